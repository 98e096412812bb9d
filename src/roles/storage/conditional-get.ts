// Answers to GET of a stored object with validators: If-None-Match (304), Range and If-Range (206, 416), for a Blob
// that Bun sends with sendfile or for a stream from an object store.

/** What an object store hands out: its bytes and validators (see ImageStore's StoredImage). */
export interface Representation {
  readonly size: number
  /** A strong entity tag, quoted. */
  readonly etag: string
  readonly lastModified: Date
  readonly body: Blob | ReadableStream<Uint8Array>
}

export interface ConditionalAnswer {
  readonly answer: 'not_modified' | 'range' | 'full'
  /** A Blob is answered by Elysia with the headers set on `set` (its own Range handling); anything else is whole. */
  readonly response: Response | Blob
}

/**
 * The answer to `request` for `item`: 304 when If-None-Match names it, a range when asked for (unless If-Range names
 * another version: then all of the current one, never a piece of it spliced onto the old), else the whole. A stream
 * not sent is cancelled.
 */
export function conditionalAnswer(
  request: Request,
  item: Representation,
  contentType: string,
  set: { headers: Record<string, string | number> },
): ConditionalAnswer {
  // no-cache: a client may keep the object but must ask again, since a later upload can replace it.
  const headers = { etag: item.etag, 'last-modified': item.lastModified.toUTCString(), 'cache-control': 'no-cache' }
  if (etagMatches(request.headers.get('if-none-match'), item.etag)) {
    if (item.body instanceof ReadableStream) void item.body.cancel().catch(() => {})
    return { answer: 'not_modified', response: new Response(null, { status: 304, headers }) }
  }
  const typed = { ...headers, 'content-type': contentType }
  const ifRange = request.headers.get('if-range')
  const range = request.headers.get('range')
  const ranged = range !== null && (ifRange === null || ifRange === item.etag)
  const answer = ranged ? 'range' : 'full'
  if (item.body instanceof Blob) {
    if (!ranged) return { answer, response: new Response(item.body, { headers: typed }) }
    // A Blob returned as is gets Elysia's Range handling (206 with Content-Range); Bun sends it with sendfile.
    Object.assign(set.headers, typed)
    return { answer, response: item.body }
  }
  // A stream (an object store's): Range is ours to handle, and Content-Length ours to give (Bun passes it on only
  // when the stream has arrived whole by the time it answers; a larger one goes out chunked, oven-sh/bun#10507).
  if (ranged) return { answer, response: streamRange(item.body, item.size, range, typed) }
  return { answer, response: new Response(item.body, { headers: { ...typed, 'accept-ranges': 'bytes', 'content-length': String(item.size) } }) }
}

/** If-None-Match uses the weak comparison (RFC 9110 13.1.2): `W/` is ignored, `*` matches any current image. */
export function etagMatches(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false
  const bare = (tag: string) => tag.trim().replace(/^W\//, '')
  return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || bare(tag) === bare(etag))
}

/** Bytes [start, end) of `body`, as a stream: the bytes before are read and dropped (a stream cannot seek). */
function sliceStream(body: ReadableStream<Uint8Array>, start: number, end: number): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  let offset = 0
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const { done, value } = await reader.read()
        // Shorter than its Content-Length: break the answer off rather than end it as if it were whole.
        if (done) return controller.error(new Error('The image ended before the range did.'))
        const from = Math.max(0, start - offset)
        const to = Math.min(value.byteLength, end - offset)
        offset += value.byteLength
        if (from < to) controller.enqueue(value.subarray(from, to))
        if (offset >= end) {
          controller.close()
          return reader.cancel()
        }
        if (from < to) return
      }
    },
    cancel: (reason) => reader.cancel(reason),
  })
}

/**
 * A Range request on an image whose body is a stream, answered as Elysia answers one on a Blob: the first range of
 * the header, `-n` for the last n bytes, the end cut to the size; 416 when it starts past the end.
 */
function streamRange(body: ReadableStream<Uint8Array>, size: number, header: string, headers: Record<string, string>): Response {
  const match = /bytes=(\d*)-(\d*)/.exec(header)
  if (!match) return new Response(body, { headers: { ...headers, 'accept-ranges': 'bytes', 'content-length': String(size) } })
  const [, first = '', last = ''] = match
  const start = first ? Number(first) : Math.max(0, size - Number(last))
  const end = first && last ? Math.min(Number(last), size - 1) : size - 1
  if ((!first && !last) || start >= size || start > end) {
    void body.cancel().catch(() => {})
    return new Response(null, { status: 416, headers: { ...headers, 'content-range': `bytes */${size}` } })
  }
  const range = { 'accept-ranges': 'bytes', 'content-range': `bytes ${start}-${end}/${size}`, 'content-length': String(end - start + 1) }
  return new Response(sliceStream(body, start, end + 1), { status: 206, headers: { ...headers, ...range } })
}
