// ImageStore on S3-compatible object storage: <prefix>/<area>/<id>.png, streamed in by multipart upload, out by one GET.
import { S3Client, type S3Options } from 'bun'
import { withDeadline } from '../../shared/async.ts'
import { type Clock, systemClock } from '../../shared/clock.ts'
import { ConfigError } from '../../shared/config.ts'
import { DependencyUnavailable, HttpError, PayloadTooLarge } from '../../shared/errors.ts'
import { type Area, assertImageKey, type ImageStore } from './image-store.ts'

export interface S3ImageStoreOptions {
  /** Endpoint and credentials. Default: what Bun's client reads itself (S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_REGION). */
  readonly client?: Pick<S3Options, 'endpoint' | 'accessKeyId' | 'secretAccessKey' | 'sessionToken' | 'region'>
  /** Multipart part size, in bytes. Default 5 MiB (S3's smallest). An upload holds about partSize × (queueSize + 1). */
  readonly partSize?: number
  /** Parts uploaded at once. Default 2. */
  readonly queueSize?: number
  /** How long a request may take to answer (a download's headers, a HEAD, a LIST page) before S3 counts as down. Default 10000. */
  readonly requestTimeoutMs?: number
  /** healthy() asks S3 at most this often and answers the last result in between. Default 1000 ms. */
  readonly healthCacheMs?: number
  /** What the health cache reads the time from and the request time-outs are scheduled on. Default systemClock. */
  readonly clock?: Clock
}

/** `s3://bucket/prefix` -> the bucket and the key prefix (`prefix/`, or '' for none). */
export function parseS3Url(url: string): { bucket: string; root: string } {
  const parsed = new URL(url)
  const prefix = parsed.pathname.replace(/^\/+|\/+$/g, '')
  if (parsed.protocol !== 's3:' || parsed.hostname === '')
    throw new ConfigError(`PIXMILL_STORAGE_URL must look like s3://bucket/prefix, got ${JSON.stringify(url)}`)
  return { bucket: parsed.hostname, root: prefix === '' ? '' : `${prefix}/` }
}

const isMissing = (error: unknown) => ['NoSuchKey', 'NotFound'].includes((error as { code?: string }).code ?? '')

/** An S3 ETag as a strong, quoted entity tag (S3 quotes its own; some compatible servers do not). */
function strongTag(tag: string | null): string | undefined {
  const bare = tag?.replace(/^W\//, '').replace(/^"|"$/g, '')
  return bare ? `"${bare}"` : undefined
}

/**
 * Opens the store over `url` (`s3://bucket/prefix`), checking with one small LIST that S3 answers and the bucket is
 * there (rejecting with DependencyUnavailable otherwise). Nothing is listed beyond that, at start or later, and nothing
 * is kept per image: the bucket's size is the object store's own figure. Uploads go up as multipart uploads of
 * `partSize` parts (one PUT when smaller), which S3 makes visible whole or not at all; a body that fails or passes the
 * limit makes Bun abort the upload. A download is one GET whose headers give the size and ETag of the bytes it streams.
 */
export async function openS3ImageStore(url: string, options: S3ImageStoreOptions = {}): Promise<ImageStore> {
  const { bucket, root } = parseS3Url(url)
  const { partSize = 5 * 1024 * 1024, queueSize = 2, requestTimeoutMs = 10_000, healthCacheMs = 1000, clock = systemClock } = options
  const client = new S3Client({ ...options.client, bucket })
  /** A request to S3 that has not answered in `ms` is taken for a failure (Bun's S3 client has no time limit of its own). */
  const timed = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
    withDeadline(promise, ms, () => new Error(`${what}: no answer within ${ms} ms`), clock)
  const keyOf = (area: Area, id: number) => `${root}${area}/${id}.png`

  let health = { ok: true, at: 0 }
  const noted = (ok: boolean) => (health = { ok, at: clock.now() })
  function unavailable(what: string, error: unknown): HttpError {
    if (error instanceof HttpError) return error
    noted(false)
    const why = (error as { code?: string }).code ?? (error as Error).message
    return new DependencyUnavailable(`${what} failed: the object store (bucket ${bucket}) did not answer (${why}).`)
  }
  /** A prefix with nothing under it: a one-key answer that still proves S3 up, the bucket there and the keys good. */
  const probe = (ms: number) => timed(client.list({ prefix: `${root}.health/`, maxKeys: 1 }), ms, 'LIST')

  try {
    await probe(requestTimeoutMs)
  } catch (error) {
    throw unavailable(`Listing s3://${bucket}/${root}`, error)
  }
  noted(true)
  let closed = false

  return {
    async put(id, area, body, { maxBytes }) {
      assertImageKey(id, area)
      if (closed) throw new DependencyUnavailable('The image store is closed.')
      const reader = body.getReader()
      let bytes = 0
      let bodyFailure: { error: unknown } | undefined
      // Pulled by Bun's uploader only as fast as parts go out, so at most a few parts are held at once.
      const limited = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            let chunk: Awaited<ReturnType<typeof reader.read>>
            try {
              chunk = await reader.read()
            } catch (error) {
              bodyFailure = { error }
              throw error
            }
            if (chunk.done) return controller.close()
            bytes += chunk.value.byteLength
            if (bytes > maxBytes) {
              bodyFailure = { error: new PayloadTooLarge(maxBytes) }
              throw bodyFailure.error
            }
            controller.enqueue(chunk.value)
          },
          cancel: (reason) => reader.cancel(reason),
        },
        { highWaterMark: 0 },
      )
      try {
        // A stream that errors makes Bun abort the multipart upload (or never send the single PUT): nothing is kept.
        await client.write(keyOf(area, id), new Response(limited), { type: 'image/png', partSize, queueSize })
      } catch (error) {
        await reader.cancel(bodyFailure?.error ?? error).catch(() => {})
        if (bodyFailure) throw bodyFailure.error
        throw unavailable(`Storing image ${id} (${area})`, error)
      } finally {
        reader.releaseLock()
      }
      noted(true)
      return { bytes }
    },

    async open(id, area) {
      assertImageKey(id, area)
      const what = `Reading image ${id} (${area})`
      // One GET through a presigned URL, not stat() then stream(): its headers describe the bytes it carries, even
      // when a replacement lands in between. The timer covers the answer's head only, never a long download.
      const abort = new AbortController()
      const cancel = clock.after(requestTimeoutMs, () => abort.abort(new Error(`GET: no answer within ${requestTimeoutMs} ms`)))
      let response: Response
      try {
        // identity: a compressing proxy on the way would make Content-Length the size of other bytes than the image's.
        const presigned = client.presign(keyOf(area, id), { method: 'GET', expiresIn: 300 })
        response = await fetch(presigned, { signal: abort.signal, headers: { 'accept-encoding': 'identity' } })
      } catch (error) {
        throw unavailable(what, error)
      } finally {
        cancel()
      }
      if (response.status === 404) {
        const answer = await response.text().catch(() => '')
        if (answer.includes('<Code>NoSuchBucket</Code>')) throw unavailable(what, new Error(`no bucket ${bucket}`))
        noted(true)
        return undefined
      }
      const size = Number(response.headers.get('content-length') ?? NaN)
      const etag = strongTag(response.headers.get('etag'))
      if (response.status !== 200 || !response.body || !Number.isSafeInteger(size) || !etag) {
        await response.body?.cancel().catch(() => {})
        throw unavailable(what, new Error(response.status === 200 ? 'an answer without Content-Length or ETag' : `HTTP ${response.status}`))
      }
      noted(true)
      const lastModified = new Date(response.headers.get('last-modified') ?? NaN)
      return { size, etag, lastModified: Number.isNaN(lastModified.getTime()) ? new Date() : lastModified, body: response.body }
    },

    async delete(id, area) {
      assertImageKey(id, area)
      if (closed) throw new DependencyUnavailable('The image store is closed.')
      const file = client.file(keyOf(area, id))
      const what = `Removing image ${id} (${area})`
      let size: number
      try {
        size = (await timed(file.stat(), requestTimeoutMs, 'HEAD')).size
      } catch (error) {
        if (!isMissing(error)) throw unavailable(what, error)
        noted(true)
        return undefined
      }
      try {
        // S3's DELETE succeeds for a key that is gone too: a concurrent removal is not an error.
        await timed(file.delete(), requestTimeoutMs, 'DELETE')
      } catch (error) {
        throw unavailable(what, error)
      }
      noted(true)
      return { bytes: size }
    },

    async healthy() {
      if (closed) return false
      if (clock.now() - health.at < healthCacheMs) return health.ok
      return noted(
        await probe(Math.min(requestTimeoutMs, 2000)).then(
          () => true,
          () => false,
        ),
      ).ok
    },

    async close() {
      closed = true
    },
  }
}
