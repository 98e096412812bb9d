// The storage role: PNG images by task id in two areas, streamed in to disk and out with sendfile.
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import { BadRequest, DependencyUnavailable, InsufficientStorage, NotFound, PayloadTooLarge, UnsupportedMediaType } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { InvalidPng } from '../../shared/png-header.ts'
import { Counter, Gauge, type Registry } from '../../shared/prom.ts'
import { PNG_SIZE_HEADER } from '../../shared/wire/headers.ts'
import { ErrorText, Success } from '../../shared/wire/params.ts'
import { conditionalAnswer } from './conditional-get.ts'
import { AREAS, type ImageStore } from './image-store.ts'
import { GetImageResponses, ImageQuery, PngRequestBody } from './model.ts'
import { type PngUpload, pngUploadBody, UploadBrokenOff, uploadFailure } from './png-upload.ts'

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
  /** PIXMILL_MIN_FREE_BYTES: uploads are refused (507) while the disk has less free. Default 1 GiB. */
  readonly minFreeBytes?: number | { readonly percent: number }
  /**
   * PIXMILL_PRIVATE_RESULTS: `/getImage` wants the token too, so that nobody reads an image around the master's key check
   * (the roles, which read through it, send the token). Default false.
   */
  readonly privateResults?: boolean
}

/**
 * Bun's own body limit is lifted: it would answer a bare 413 (no `Error:` text) before any handler ran, for any
 * Content-Length above it. Lifting it costs no memory here: `/sendImage` streams its body and enforces
 * `maxUploadBytes` itself, and no other route reads a body (Elysia parses one only for a handler that uses it).
 */
const BUN_BODY_LIMIT = Number.MAX_SAFE_INTEGER

function storageMetrics(registry: Registry, store: ImageStore) {
  const stats = store.stats?.bind(store)
  // Only where the store can tell without listing (the file system); an object store's size is the bucket's figure.
  const figure = (name: string, help: string, pick: 'images' | 'bytes') =>
    stats &&
    new Gauge({
      name,
      help,
      labelNames: ['area'],
      registers: [registry],
      async collect() {
        // A store that is down keeps the last figures: /metrics must still answer.
        const now = await stats().catch(() => undefined)
        if (now) for (const area of AREAS) this.set({ area }, now[area][pick])
      },
    })
  figure('pixmill_storage_images', 'Images held, per area.', 'images')
  figure('pixmill_storage_stored_bytes', 'Bytes of the images held, per area.', 'bytes')
  // The disk the images are on (file system only): alert well before PIXMILL_MIN_FREE_BYTES refuses uploads.
  const freeSpace = store.freeSpace?.bind(store)
  if (freeSpace) {
    const disk = (name: string, help: string, pick: 'free' | 'total') =>
      new Gauge({
        name,
        help,
        registers: [registry],
        async collect() {
          const now = await freeSpace().catch(() => undefined)
          if (now) this.set(now[pick])
        },
      })
    disk('pixmill_storage_disk_free_bytes', 'Free bytes on the disk of the images (as an unprivileged process sees them).', 'free')
    disk('pixmill_storage_disk_size_bytes', 'Size of the disk of the images, in bytes.', 'total')
  }
  return {
    removed: new Counter({
      name: 'pixmill_storage_images_removed_total',
      help: 'Images removed (/deleteImage), per area.',
      labelNames: ['area'],
      registers: [registry],
    }),
    removedBytes: new Counter({ name: 'pixmill_storage_removed_bytes_total', help: 'Bytes of the images removed.', registers: [registry] }),
    stored: new Counter({
      name: 'pixmill_storage_images_stored_total',
      help: 'Uploads stored and acknowledged, per area.',
      labelNames: ['area'],
      registers: [registry],
    }),
    received: new Counter({ name: 'pixmill_storage_received_bytes_total', help: 'Bytes of the uploads stored.', registers: [registry] }),
    served: new Counter({
      name: 'pixmill_storage_images_served_total',
      help: 'Downloads answered, per area and answer (full, range, not_modified).',
      labelNames: ['area', 'answer'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'pixmill_storage_uploads_rejected_total',
      help: 'Uploads not stored, per reason (too_large, not_png, empty, broken_off, disk_full, store_unavailable, error).',
      labelNames: ['reason'],
      registers: [registry],
    }),
  }
}

function rejectReason(error: unknown): string {
  if (error instanceof InsufficientStorage) return 'disk_full'
  if (error instanceof PayloadTooLarge) return 'too_large'
  if (error instanceof UnsupportedMediaType || error instanceof InvalidPng) return 'not_png'
  if (error instanceof UploadBrokenOff) return 'broken_off'
  if (error instanceof BadRequest) return 'empty'
  if (error instanceof DependencyUnavailable) return 'store_unavailable'
  return 'error'
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`

/**
 * Whether the disk under the store keeps at least `min` free (bytes, or a share of the disk): the reason when it does
 * not. The free space is read at most once a second; a store with no disk of its own (S3) always has room.
 */
function diskGuard(store: ImageStore, min: number | { readonly percent: number }) {
  let checked: { at: number; problem: Promise<string | undefined> } | undefined
  const read = async (): Promise<string | undefined> => {
    if (!store.freeSpace) return undefined
    const { free, total } = await store.freeSpace()
    const needed = typeof min === 'number' ? min : (total * min.percent) / 100
    if (free >= needed) return undefined
    const limit = typeof min === 'number' ? gib(min) : `${min.percent} % of ${gib(total)}`
    return `The disk has ${gib(free)} free, less than PIXMILL_MIN_FREE_BYTES (${limit}).`
  }
  return {
    problem(): Promise<string | undefined> {
      if (!checked || performance.now() - checked.at > 1000) checked = { at: performance.now(), problem: read().catch(() => undefined) }
      return checked.problem
    },
  }
}

/** Builds the storage app; it never listens (the entry file or the launcher does). */
export function createStorageApp({
  store,
  log,
  registry,
  maxUploadBytes,
  token,
  idleTimeoutSeconds,
  uploadTimeoutSeconds = 300,
  minFreeBytes = 1024 ** 3,
  privateResults = false,
}: StorageAppDeps) {
  const metrics = storageMetrics(registry, store)
  const disk = diskGuard(store, minFreeBytes)
  const app = roleKit({
    role: 'storage',
    // `/sendImage` and `/deleteImage` are internal (declared nothing); `/getImage` says what it is.
    token,
    idleTimeoutSeconds,
    description:
      'PNG images by task id, in two areas: `working` (uploaded) and `finished` (processed). Uploads are streamed in and ' +
      'replace an image atomically once complete (a temporary file renamed into place, or one S3 object put), so a reader ' +
      'never sees half an image; downloads carry an `ETag` and honour `If-None-Match` and `Range`.',
    log,
    registry,
    health: async () => ({ ok: await store.healthy() }),
    ready: async () => {
      const [healthy, room] = await Promise.all([store.healthy(), disk.problem()])
      const reasons = [...(healthy ? [] : ['the image store cannot be reached']), ...(room ? [room] : [])]
      return { ok: reasons.length === 0, ...(reasons.length > 0 ? { reasons } : {}) }
    },
    maxRequestBodySize: BUN_BODY_LIMIT,
  })
    .post(
      '/sendImage',
      async ({ query, request, set }) => {
        let body: PngUpload | undefined
        try {
          const room = await disk.problem()
          if (room) throw new InsufficientStorage(`${room} Uploads are refused until there is room.`)
          body = await pngUploadBody(request, maxUploadBytes, uploadTimeoutSeconds)
          const { bytes } = await store.put(Number(query.id), query.state, body.stream, { maxBytes: maxUploadBytes })
          metrics.stored.inc({ area: query.state })
          metrics.received.inc(bytes)
          log.info({ id: Number(query.id), area: query.state, bytes }, 'image stored')
          set.headers[PNG_SIZE_HEADER] = `${body.header.width}x${body.header.height}`
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
        response: { 200: Success, 400: ErrorText, 413: ErrorText, 415: ErrorText, 503: ErrorText, 507: ErrorText },
        detail: {
          summary: 'Store the raw PNG body as the image of `id` in area `state` (replacing any earlier one)',
          description:
            `Answers \`success\` once the whole image is on disk. \`413\` for a body over PIXMILL_MAX_UPLOAD_BYTES ` +
            `(${maxUploadBytes} bytes here), \`415\` unless it starts with the PNG signature, \`400\` when empty or without a valid ` +
            `IHDR. The answer's \`X-Png-Size\` header gives the size the IHDR declares (\`512x512\`).`,
          requestBody: PngRequestBody,
          tags: ['original'],
        },
      },
    )
    .post(
      '/deleteImage',
      async ({ query }) => {
        const removed = await store.delete(Number(query.id), query.state)
        if (removed) {
          metrics.removed.inc({ area: query.state })
          metrics.removedBytes.inc(removed.bytes)
        }
        return 'success' as const
      },
      {
        query: ImageQuery,
        response: { 200: Success, 400: ErrorText, 503: ErrorText },
        detail: {
          summary: 'Remove the image of `id` in area `state` (`success` whether or not there was one)',
          description: 'For the database role when a task is removed (retention or an operator’s delete). Internal: wants the token when PIXMILL_TOKEN is set.',
          tags: ['beyond'],
        },
      },
    )
    .get(
      '/getImage',
      async ({ query, request, set }) => {
        const image = await store.open(Number(query.id), query.state)
        if (!image) throw new NotFound(`No ${query.state} image for id ${query.id}.`)
        const { answer, response } = conditionalAnswer(request, image, 'image/png', set)
        metrics.served.inc({ area: query.state, answer })
        return response
      },
      {
        // With private results an image is for the roles and operators only; the master checks the key before it fetches one.
        access: privateResults ? 'internal' : 'public',
        query: ImageQuery,
        detail: { summary: 'The image of `id` in area `state`, as raw PNG bytes', responses: GetImageResponses, tags: ['original'] },
      },
    )
  return finishRole(app)
}
