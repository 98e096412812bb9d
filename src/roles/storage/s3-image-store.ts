// ImageStore on S3-compatible object storage: <prefix>/<area>/<id>.png, streamed in by multipart upload, out by one GET.
import { S3Client, type S3Options } from 'bun'
import { ConfigError } from '../../shared/config.ts'
import { DependencyUnavailable, HttpError, PayloadTooLarge } from '../../shared/errors.ts'
import { type Area, AREAS, assertImageKey, type ImageStore, type StoreStats } from './image-store.ts'

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
  /** The counts are read again from a whole LIST this often, to take in other instances' writes; 0: never. Default 300. */
  readonly resyncSeconds?: number
  /** Keys per LIST page. Default 1000 (S3's most). */
  readonly listPageSize?: number
}

/** `s3://bucket/prefix` -> the bucket and the key prefix (`prefix/`, or '' for none). */
export function parseS3Url(url: string): { bucket: string; root: string } {
  const parsed = new URL(url)
  const prefix = parsed.pathname.replace(/^\/+|\/+$/g, '')
  if (parsed.protocol !== 's3:' || parsed.hostname === '') throw new ConfigError(`PIXMILL_STORAGE_URL must look like s3://bucket/prefix, got ${JSON.stringify(url)}`)
  return { bucket: parsed.hostname, root: prefix === '' ? '' : `${prefix}/` }
}

/** A request to S3 that has not answered in `ms` is taken for a failure (Bun's S3 client has no time limit of its own). */
function timed<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)))
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

const isMissing = (error: unknown) => ['NoSuchKey', 'NotFound'].includes((error as { code?: string }).code ?? '')

/** An S3 ETag as a strong, quoted entity tag (S3 quotes its own; some compatible servers do not). */
function strongTag(tag: string | null): string | undefined {
  const bare = tag?.replace(/^W\//, '').replace(/^"|"$/g, '')
  return bare ? `"${bare}"` : undefined
}

type Sizes = Record<Area, Map<number, number>>

/**
 * Opens the store over `url` (`s3://bucket/prefix`) and counts its images with one LIST (rejecting with
 * DependencyUnavailable when S3 cannot be listed). Uploads go up as multipart uploads of `partSize` parts (one PUT
 * when smaller), which S3 makes visible whole or not at all; a body that fails or passes the limit makes Bun abort
 * the upload. A download is one GET whose headers give the size and ETag of the very bytes it streams.
 */
export async function openS3ImageStore(url: string, options: S3ImageStoreOptions = {}): Promise<ImageStore> {
  const { bucket, root } = parseS3Url(url)
  const { partSize = 5 * 1024 * 1024, queueSize = 2, requestTimeoutMs = 10_000, healthCacheMs = 1000, resyncSeconds = 300, listPageSize = 1000 } = options
  const client = new S3Client({ ...options.client, bucket })
  const keyOf = (area: Area, id: number) => `${root}${area}/${id}.png`
  const KEY = new RegExp(`^${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(${AREAS.join('|')})/(0|[1-9][0-9]{0,15})\\.png$`)

  let health = { ok: true, at: 0 }
  const noted = (ok: boolean) => (health = { ok, at: performance.now() })
  function unavailable(what: string, error: unknown): HttpError {
    if (error instanceof HttpError) return error
    noted(false)
    const why = (error as { code?: string }).code ?? (error as Error).message
    return new DependencyUnavailable(`${what} failed: the object store (bucket ${bucket}) did not answer (${why}).`)
  }

  /** Sizes of the images under the prefix, from LIST pages. */
  async function listAll(): Promise<Sizes> {
    const found: Sizes = { working: new Map(), finished: new Map() }
    let continuationToken: string | undefined
    do {
      const page = await timed(client.list({ prefix: root, maxKeys: listPageSize, continuationToken }), requestTimeoutMs, 'LIST')
      for (const { key, size } of page.contents ?? []) {
        const match = KEY.exec(key)
        if (match && size !== undefined && Number.isSafeInteger(Number(match[2]))) found[match[1] as Area].set(Number(match[2]), size)
      }
      continuationToken = page.isTruncated ? page.nextContinuationToken : undefined
    } while (continuationToken)
    return found
  }

  let sizes: Sizes
  try {
    sizes = await listAll()
  } catch (error) {
    throw unavailable(`Listing the images under s3://${bucket}/${root}`, error)
  }
  noted(true)
  // Kept per image, not only as totals, because a replacement must take the old size off.
  const totals = {} as Record<Area, { images: number; bytes: number }>
  const recount = () => AREAS.forEach((area) => (totals[area] = { images: sizes[area].size, bytes: [...sizes[area].values()].reduce((a, b) => a + b, 0) }))
  recount()
  /** Keys set while a resync's LIST runs: the local answer is newer than the LIST's. */
  let touched: Set<string> | undefined
  function setSize(area: Area, id: number, size: number | undefined): void {
    const old = sizes[area].get(id)
    if (size === undefined) sizes[area].delete(id)
    else sizes[area].set(id, size)
    totals[area].images += (size === undefined ? 0 : 1) - (old === undefined ? 0 : 1)
    totals[area].bytes += (size ?? 0) - (old ?? 0)
    touched?.add(`${area}/${id}`)
  }

  /**
   * After a put, the image's size is asked of S3 (HEAD) rather than taken from the body: with concurrent puts to one
   * key S3 decides which body stays. Only the latest HEAD asked per key counts; stats() waits for those in flight.
   */
  let asked = 0
  const latest = new Map<string, number>()
  const refreshing = new Set<Promise<void>>()
  function refresh(area: Area, id: number, fallback: number): void {
    const name = `${area}/${id}`
    const mine = ++asked
    latest.set(name, mine)
    const done = timed(client.file(keyOf(area, id)).stat(), requestTimeoutMs, 'HEAD')
      .then(({ size }) => size, (error: unknown) => (isMissing(error) ? undefined : fallback))
      .then((size) => {
        if (latest.get(name) !== mine) return
        latest.delete(name)
        setSize(area, id, size)
      })
    refreshing.add(done)
    void done.finally(() => refreshing.delete(done))
  }

  let resyncing: Promise<void> | undefined
  async function resync(): Promise<void> {
    const changed = (touched = new Set())
    try {
      const fresh = await listAll()
      for (const name of changed) {
        const [area, id] = name.split('/') as [Area, string]
        const size = sizes[area].get(Number(id))
        if (size === undefined) fresh[area].delete(Number(id))
        else fresh[area].set(Number(id), size)
      }
      sizes = fresh
      recount()
    } finally {
      touched = undefined
    }
  }
  const resyncTimer = resyncSeconds > 0 ? setInterval(() => void (resyncing ??= resync().catch(() => {}).finally(() => (resyncing = undefined))), resyncSeconds * 1000) : undefined
  resyncTimer?.unref()
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
      refresh(area, id, bytes)
      return { bytes }
    },

    async open(id, area) {
      assertImageKey(id, area)
      const what = `Reading image ${id} (${area})`
      // One GET through a presigned URL, not stat() then stream(): its headers describe the bytes it carries, even
      // when a replacement lands in between. The timer covers the answer's head only, never a long download.
      const abort = new AbortController()
      const timer = setTimeout(() => abort.abort(new Error(`GET: no answer within ${requestTimeoutMs} ms`)), requestTimeoutMs)
      let response: Response
      try {
        // identity: a compressing proxy on the way would make Content-Length the size of other bytes than the image's.
        const presigned = client.presign(keyOf(area, id), { method: 'GET', expiresIn: 300 })
        response = await fetch(presigned, { signal: abort.signal, headers: { 'accept-encoding': 'identity' } })
      } catch (error) {
        throw unavailable(what, error)
      } finally {
        clearTimeout(timer)
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

    async stats(): Promise<StoreStats> {
      await Promise.all(refreshing)
      return { working: { ...totals.working }, finished: { ...totals.finished } }
    },

    async healthy() {
      if (closed) return false
      if (performance.now() - health.at < healthCacheMs) return health.ok
      // A prefix with nothing under it: a one-key answer that still proves S3 up, the bucket there and the keys good.
      const probe = timed(client.list({ prefix: `${root}.health/`, maxKeys: 1 }), Math.min(requestTimeoutMs, 2000), 'LIST')
      return noted(await probe.then(() => true, () => false)).ok
    },

    async close() {
      closed = true
      clearInterval(resyncTimer)
    },
  }
}
