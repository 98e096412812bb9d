// A streaming multipart/form-data reader: one part at a time, a file's bytes handed on as they arrive, never the whole body.
import { BadRequest } from '../../shared/errors.ts'

/** What a part's headers say about it. */
export interface PartHeaders {
  readonly name: string
  /** Present (possibly empty) when the part is a file. */
  readonly filename?: string
  readonly contentType?: string
}

/** Longest preamble, header block or transport padding accepted; a form has no reason to send more. */
const MAX_HEADER_BYTES = 16 * 1024
const CRLF = Buffer.from('\r\n')
const END_OF_HEADERS = Buffer.from('\r\n\r\n')

/** The boundary of a `multipart/form-data` Content-Type, or undefined for any other type. */
export function multipartBoundary(contentType: string | null): string | undefined {
  if (!contentType || !/^\s*multipart\/form-data\s*(;|$)/i.test(contentType)) return undefined
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType)
  return match?.[1] ?? match?.[2]
}

/** Reads `name="..."`-style parameters of a Content-Disposition header (quoted strings with `\` escapes). */
function dispositionParams(value: string): Map<string, string> {
  const params = new Map<string, string>()
  const re = /;\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g
  for (let m = re.exec(value); m; m = re.exec(value)) {
    params.set(m[1]!.toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!)
  }
  return params
}

function parseHeaders(block: string): PartHeaders {
  let disposition: string | undefined
  let contentType: string | undefined
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-disposition') disposition = value
    else if (name === 'content-type') contentType = value
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw new BadRequest('A part of the form has no `Content-Disposition: form-data` header.')
  const params = dispositionParams(disposition)
  const name = params.get('name')
  if (name === undefined) throw new BadRequest('A part of the form has no field name.')
  return { name, filename: params.get('filename'), contentType }
}

/**
 * Pull-based reader over a multipart body. Call `nextPart()` for each part's headers, then `readChunk()` until it
 * gives undefined (or `readText()`), or go straight to the next part, which skips what is left of the current one.
 */
export class MultipartReader {
  private buffer: Buffer
  private state: 'preamble' | 'body' | 'between' | 'done' = 'preamble'
  private sourceEnded = false
  private readonly delimiter: Buffer

  constructor(
    private readonly source: ReadableStreamDefaultReader<Uint8Array>,
    boundary: string,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`)
    // The first delimiter may open the body without the CRLF that precedes the others.
    this.buffer = Buffer.from(CRLF)
  }

  /** Reads more from the source; false once it has ended. A client that goes away is bad input, not our failure. */
  private async fill(): Promise<boolean> {
    if (this.sourceEnded) return false
    let next: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>
    try {
      next = await this.source.read()
    } catch {
      throw new BadRequest('The upload was interrupted before the whole form arrived.')
    }
    if (next.done) {
      this.sourceEnded = true
      return false
    }
    this.buffer =
      this.buffer.length === 0 ? Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength) : Buffer.concat([this.buffer, next.value])
    return true
  }

  /** Consumes bytes up to and including `marker`, returning those before it; `limit` bounds how far it looks. */
  private async consumeThrough(marker: Buffer, limit: number, what: string): Promise<Buffer> {
    for (;;) {
      const at = this.buffer.indexOf(marker)
      if (at >= 0 && at <= limit) {
        const before = this.buffer.subarray(0, at)
        this.buffer = this.buffer.subarray(at + marker.length)
        return before
      }
      if (this.buffer.length > limit + marker.length) throw new BadRequest(`The form's ${what} is too long.`)
      if (!(await this.fill())) throw new BadRequest(`The form ends inside its ${what}; it is not a complete multipart body.`)
    }
  }

  /** The next part's headers, or undefined after the closing delimiter. Skips the rest of the current part. */
  async nextPart(): Promise<PartHeaders | undefined> {
    if (this.state === 'body') while ((await this.readChunk()) !== undefined);
    if (this.state === 'done') return undefined
    if (this.state === 'preamble') await this.consumeThrough(this.delimiter, MAX_HEADER_BYTES, 'preamble')
    while (this.buffer.length < 2) if (!(await this.fill())) throw new BadRequest('The form ends after a boundary; it is not a complete multipart body.')
    if (this.buffer[0] === 0x2d && this.buffer[1] === 0x2d) {
      this.state = 'done'
      return undefined
    }
    // The rest of the boundary line is transport padding (spaces and tabs), ignored as RFC 2046 says.
    const padding = await this.consumeThrough(CRLF, MAX_HEADER_BYTES, 'boundary line')
    if (/[^ \t]/.test(padding.toString('latin1'))) throw new BadRequest('A boundary line of the form has unexpected text after it.')
    let block = ''
    if (this.buffer.subarray(0, 2).equals(CRLF)) this.buffer = this.buffer.subarray(2)
    else {
      while (this.buffer.length < 2) if (!(await this.fill())) throw new BadRequest('The form ends inside a part header.')
      if (this.buffer.subarray(0, 2).equals(CRLF)) this.buffer = this.buffer.subarray(2)
      else block = (await this.consumeThrough(END_OF_HEADERS, MAX_HEADER_BYTES, 'part header')).toString('utf8')
    }
    this.state = 'body'
    return parseHeaders(block)
  }

  /** How many bytes at the end of the buffer could be the start of a delimiter that the next read completes. */
  private partialDelimiterAtEnd(): number {
    const end = this.buffer.length
    for (let i = this.buffer.indexOf(0x0d, Math.max(0, end - this.delimiter.length + 1)); i >= 0; i = this.buffer.indexOf(0x0d, i + 1)) {
      if (this.buffer.subarray(i).equals(this.delimiter.subarray(0, end - i))) return end - i
    }
    return 0
  }

  /** The next bytes of the current part's body; undefined once it has ended (and from then on). */
  async readChunk(): Promise<Uint8Array | undefined> {
    while (this.state === 'body') {
      const at = this.buffer.indexOf(this.delimiter)
      if (at >= 0) {
        const chunk = this.buffer.subarray(0, at)
        this.buffer = this.buffer.subarray(at + this.delimiter.length)
        this.state = 'between'
        return chunk.length > 0 ? chunk : undefined
      }
      // Hold back only what could be a delimiter split across two reads (usually nothing), so that the next read
      // needs no copy.
      const hold = this.partialDelimiterAtEnd()
      if (this.buffer.length > hold) {
        const chunk = this.buffer.subarray(0, this.buffer.length - hold)
        this.buffer = this.buffer.subarray(this.buffer.length - hold)
        return chunk
      }
      if (!(await this.fill())) throw new BadRequest('The form ends inside a part; it is not a complete multipart body.')
    }
    return undefined
  }

  /** The current part's body as UTF-8 text, at most `limit` bytes. */
  async readText(limit: number): Promise<string> {
    const chunks: Uint8Array[] = []
    let size = 0
    for (let chunk = await this.readChunk(); chunk !== undefined; chunk = await this.readChunk()) {
      size += chunk.byteLength
      if (size > limit) throw new BadRequest(`A text field of the form is longer than ${limit} bytes.`)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  }

  /** Stops reading the source. */
  async cancel(): Promise<void> {
    await this.source.cancel().catch(() => {})
  }
}
