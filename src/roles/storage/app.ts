// The storage role: PNG images by task id in two areas, streamed in to disk and out with sendfile.
import { Counter, Gauge, type Registry } from 'prom-client'
import { withMethodGuard } from '../../plugins/method-guard.ts'
import { roleKit } from '../../plugins/role-kit.ts'
import { BadRequest, DependencyUnavailable, NotFound, PayloadTooLarge, UnsupportedMediaType } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { ErrorText, Success } from '../../shared/schemas.ts'
import { AREAS, type ImageStore } from './image-store.ts'
import { GetImageResponses, ImageQuery, PngRequestBody } from './model.ts'
import type { PeekedBody } from '../../shared/body-stream.ts'
import { pngUploadBody, UploadBrokenOff, uploadFailure } from './png-upload.ts'

export interface StorageAppDeps {
  /** PIXMILL_TOKEN: when set, the internal routes want it. */
  readonly token?: string
  /** PIXMILL_IDLE_TIMEOUT_SECONDS. */
  readonly idleTimeoutSeconds?: number
  readonly store: ImageStore
  readonly log: Logger
  readonly registry: Registry
  /** The largest PNG accepted, in bytes (PIXMILL_MAX_UPLOAD_BYTES); larger gets 413. */
  readonly maxUploadBytes: number
  /** PIXMILL_UPLOAD_TIMEOUT_SECONDS: the whole body must have arrived by then. Default 300. */
  readonly uploadTimeoutSeconds?: number
}

/**
 * Bun's own body limit is lifted: it would answer a bare 413 (no `Error:` text) before any handler ran, for any
 * Content-Length above it. Lifting it costs no memory here: `/sendImage` streams its body and enforces
 * `maxUploadBytes` itself, and no other route reads a body (Elysia parses one only for a handler that uses it).
 */
const BUN_BODY_LIMIT = Number.MAX_SAFE_INTEGER

function storageMetrics(registry: Registry, store: ImageStore) {
  const figure = (name: string, help: string, pick: 'images' | 'bytes') =>
    new Gauge({
      name,
      help,
      labelNames: ['area'],
      registers: [registry],
      async collect() {
        const stats = await store.stats()
        for (const area of AREAS) this.set({ area }, stats[area][pick])
      },
    })
  figure('pixmill_storage_images', 'Images held, per area.', 'images')
  figure('pixmill_storage_stored_bytes', 'Bytes of the images held, per area.', 'bytes')
  return {
    stored: new Counter({ name: 'pixmill_storage_images_stored_total', help: 'Uploads stored and acknowledged, per area.', labelNames: ['area'], registers: [registry] }),
    received: new Counter({ name: 'pixmill_storage_received_bytes_total', help: 'Bytes of the uploads stored.', registers: [registry] }),
    served: new Counter({
      name: 'pixmill_storage_images_served_total',
      help: 'Downloads answered, per area and answer (full, range, not_modified).',
      labelNames: ['area', 'answer'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'pixmill_storage_uploads_rejected_total',
      help: 'Uploads not stored, per reason (too_large, not_png, empty, broken_off, store_unavailable, error).',
      labelNames: ['reason'],
      registers: [registry],
    }),
  }
}

function rejectReason(error: unknown): string {
  if (error instanceof PayloadTooLarge) return 'too_large'
  if (error instanceof UnsupportedMediaType) return 'not_png'
  if (error instanceof UploadBrokenOff) return 'broken_off'
  if (error instanceof BadRequest) return 'empty'
  if (error instanceof DependencyUnavailable) return 'store_unavailable'
  return 'error'
}

/** If-None-Match uses the weak comparison (RFC 9110 13.1.2): `W/` is ignored, `*` matches any current image. */
export function etagMatches(ifNoneMatch: string | null, etag: string): boolean {
  if (!ifNoneMatch) return false
  const bare = (tag: string) => tag.trim().replace(/^W\//, '')
  return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || bare(tag) === bare(etag))
}

/** Builds the storage app; it never listens (the entry file or the launcher does). */
export function createStorageApp({ store, log, registry, maxUploadBytes, token, idleTimeoutSeconds, uploadTimeoutSeconds = 300 }: StorageAppDeps) {
  const metrics = storageMetrics(registry, store)
  const app = roleKit({
    role: 'storage',
    token: token,
    internal: ['/sendImage'],
    idleTimeoutSeconds: idleTimeoutSeconds,
    description:
      'PNG images by task id, in two areas: `working` (uploaded) and `finished` (processed). Uploads are streamed to ' +
      'a temporary file and renamed into place once complete, so a reader never sees half an image; downloads carry ' +
      'an `ETag` and honour `If-None-Match` and `Range`.',
    log,
    registry,
    health: async () => ({ ok: await store.healthy() }),
    maxRequestBodySize: BUN_BODY_LIMIT,
  })
    .post(
      '/sendImage',
      async ({ query, request }) => {
        let body: PeekedBody | undefined
        try {
          body = await pngUploadBody(request, maxUploadBytes, uploadTimeoutSeconds)
          const { bytes } = await store.put(Number(query.id), query.state, body.stream, { maxBytes: maxUploadBytes })
          metrics.stored.inc({ area: query.state })
          metrics.received.inc(bytes)
          log.info({ id: Number(query.id), area: query.state, bytes }, 'image stored')
        } catch (caught) {
          const error = uploadFailure(body, caught, maxUploadBytes)
          const reason = rejectReason(error)
          metrics.rejected.inc({ reason })
          if (reason === 'store_unavailable' || reason === 'error') log.error({ err: error, id: query.id, area: query.state }, 'storing an image failed')
          throw error
        }
        return 'success' as const
      },
      {
        query: ImageQuery,
        // The body stays an unread stream whatever its Content-Type (or none, as some original clients send).
        parse: 'none',
        response: { 200: Success, 400: ErrorText, 413: ErrorText, 415: ErrorText, 503: ErrorText },
        detail: {
          summary: 'Store the raw PNG body as the image of `id` in area `state` (replacing any earlier one)',
          description:
            `Answers \`success\` once the whole image is on disk. \`413\` for a body over PIXMILL_MAX_UPLOAD_BYTES ` +
            `(${maxUploadBytes} bytes here), \`415\` unless it starts with the PNG signature, \`400\` when empty.`,
          requestBody: PngRequestBody,
          tags: ['original'],
        },
      },
    )
    .get(
      '/getImage',
      async ({ query, request, set }) => {
        const image = await store.open(Number(query.id), query.state)
        if (!image) throw new NotFound(`No ${query.state} image for id ${query.id}.`)
        // no-cache: a client may keep the image but must ask again, since a later upload can replace it.
        const headers = { etag: image.etag, 'last-modified': image.lastModified.toUTCString(), 'cache-control': 'no-cache' }
        if (etagMatches(request.headers.get('if-none-match'), image.etag)) {
          if (image.body instanceof ReadableStream) await image.body.cancel()
          metrics.served.inc({ area: query.state, answer: 'not_modified' })
          return new Response(null, { status: 304, headers })
        }
        const typed = { ...headers, 'content-type': 'image/png' }
        // If-Range naming an older image: send the whole current one, never a piece of it spliced onto the old.
        const ifRange = request.headers.get('if-range')
        const ranged = request.headers.has('range') && (ifRange === null || ifRange === image.etag) && image.body instanceof Blob
        metrics.served.inc({ area: query.state, answer: ranged ? 'range' : 'full' })
        if (ranged) {
          // A Blob returned as is gets Elysia's Range handling (206 with Content-Range); Bun sends it with sendfile.
          Object.assign(set.headers, typed)
          return image.body
        }
        // Bun sets Content-Length itself for a Blob (from the file it sends, so it always matches); a stream needs ours.
        const length: Record<string, string> = image.body instanceof Blob ? {} : { 'content-length': String(image.size) }
        return new Response(image.body, { headers: { ...typed, ...length } })
      },
      {
        query: ImageQuery,
        detail: { summary: 'The image of `id` in area `state`, as raw PNG bytes', responses: GetImageResponses, tags: ['original'] },
      },
    )
  return withMethodGuard(app)
}
