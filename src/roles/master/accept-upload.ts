// POST /new without lost or phantom work: reserve a held task, stream the image to storage, then activate the task.
import type { DatabaseClient } from '../../clients/database-client.ts'
import type { StorageClient, StoredImage } from '../../clients/storage-client.ts'
import { collectionPace, declaredLength, peekBody } from '../../shared/body-stream.ts'
import { BadRequest, PayloadTooLarge, RequestTimeout } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { checkPngHead, PNG_HEADER_BYTES } from '../../shared/png-header.ts'

export interface UploadDeps {
  readonly database: DatabaseClient
  readonly storage: StorageClient
  readonly maxUploadBytes: number
  /** PIXMILL_UPLOAD_TIMEOUT_SECONDS: the whole body must have arrived by then. */
  readonly uploadTimeoutSeconds: number
  readonly log: Logger
  /** The hash of the task key of a private result, kept with the task. */
  readonly keyHash?: string
  /** What the uploads so far showed of the peers; without it every upload is read here. */
  readonly peers?: UploadPeers
}

export interface AcceptedUpload {
  readonly id: number
  /** The size the PNG's IHDR declares. */
  readonly size: { readonly width: number; readonly height: number }
}

/**
 * Whether an upload may go to storage unread, learnt from the last one stored. Unread, Bun moves the body from the
 * client's socket to storage's without handing a chunk to JavaScript: half the master's CPU for a 0.7 MB upload, and
 * no 64 KiB buffer per chunk left for the collector (the resident size after a few hundred uploads stayed 20 MB
 * lower in a probe). That is safe only while both peers stand in for the master's own check: storage refuses a body
 * that is not a PNG with the master's answer (its `success` carries X-Png-Size) and the database holds a reserved task
 * until it is activated (so a refused body leaves no task). An original storage or database never shows both, so the
 * uploads to them are read and checked here, as before.
 */
export function createUploadPeers() {
  let storageChecks = false
  let databaseHolds = false
  return {
    passUnread: () => storageChecks && databaseHolds,
    learn(stored: StoredImage, held: boolean): void {
      storageChecks = stored.size !== undefined
      databaseHolds = held
    },
  }
}

export type UploadPeers = ReturnType<typeof createUploadPeers>

const EMPTY = 'The body is empty: send the PNG as the raw request body.'

/**
 * Checks the PNG signature and IHDR from the first bytes, then streams the body to storage under a held task.
 * The task becomes claimable only after storage said `success`; on any failure it is dropped, so no worker ever
 * gets a task without its image, and every id answered has its image stored. An original database has no held tasks:
 * there the task is created claimable, as the original master did. A body of declared length goes to storage unread
 * when the peers check it (createUploadPeers).
 */
export async function acceptUpload(request: Request, deps: UploadDeps): Promise<AcceptedUpload> {
  const limit = deps.maxUploadBytes
  const length = declaredLength(request)
  if (length !== undefined && length > limit) throw new PayloadTooLarge(limit)
  if (!request.body || length === 0) throw new BadRequest(EMPTY)
  if (length !== undefined && deps.peers?.passUnread()) return storeUnread(request, request.body, length, deps)
  const body = await peekBody(request.body, PNG_HEADER_BYTES, limit, deps.uploadTimeoutSeconds, collectionPace(length))
  if (body.head.byteLength === 0) throw new BadRequest(EMPTY)
  let size: AcceptedUpload['size']
  try {
    size = checkPngHead(body.head)
  } catch (refusal) {
    await body.stream.cancel().catch(() => {})
    throw refusal
  }
  const { id, held } = await reserve(deps, body.stream)
  let stored: StoredImage
  try {
    stored = await deps.storage.send(id, 'working', body.stream, { contentLength: length })
  } catch (error) {
    await dropReserved(id, held, deps)
    const failure = body.failure()
    if (failure === 'too-large') throw new PayloadTooLarge(limit)
    if (failure === 'too-slow') throw new RequestTimeout(deps.uploadTimeoutSeconds)
    if (failure === 'source-failed') throw new BadRequest('The upload was interrupted before the whole body arrived.')
    throw error
  }
  if (held) await deps.database.activateTask(id)
  deps.peers?.learn(stored, held)
  return { id, size }
}

/**
 * The body passed to storage as it came, checked by storage (whose refusal is the answer, as callPeer passes a 4xx
 * on). The deadline aborts the call to storage, which then keeps nothing. A storage that answers without the size it
 * read has stopped checking (an original one put at its address since the last upload): the stored image's first
 * bytes are read back and checked here before the task is activated.
 */
async function storeUnread(request: Request, body: ReadableStream<Uint8Array>, length: number, deps: UploadDeps): Promise<AcceptedUpload> {
  const { id, held } = await reserve(deps, body)
  const deadline = AbortSignal.timeout(deps.uploadTimeoutSeconds * 1000)
  let stored: StoredImage
  try {
    stored = await deps.storage.send(id, 'working', body, { contentLength: length, signal: deadline })
  } catch (error) {
    await dropReserved(id, held, deps)
    if (deadline.aborted) throw new RequestTimeout(deps.uploadTimeoutSeconds)
    if (request.signal.aborted) throw new BadRequest('The upload was interrupted before the whole body arrived.')
    throw error
  }
  deps.peers?.learn(stored, held)
  const size = stored.size ?? (await checkStoredHead(id, held, deps))
  if (held) await deps.database.activateTask(id)
  return { id, size }
}

/** Reads back the first bytes of the image stored for `id` and checks them; a refused one is removed with its task. */
async function checkStoredHead(id: number, held: boolean, deps: UploadDeps): Promise<AcceptedUpload['size']> {
  const stored = await peekBody((await deps.storage.get(id, 'working')).body!, PNG_HEADER_BYTES, deps.maxUploadBytes)
  await stored.stream.cancel().catch(() => {})
  try {
    return checkPngHead(stored.head)
  } catch (refusal) {
    await dropReserved(id, held, deps)
    await deps.storage.remove(id, 'working').catch(() => {})
    throw refusal
  }
}

/** A task for the upload: held until activated where the database can hold one. */
async function reserve(deps: UploadDeps, body: ReadableStream<Uint8Array>) {
  try {
    return await deps.database.reserveTask({ keyHash: deps.keyHash })
  } catch (error) {
    await body.cancel().catch(() => {})
    throw error
  }
}

async function dropReserved(id: number, held: boolean, deps: UploadDeps): Promise<void> {
  if (held) {
    await deps.database
      .dropTask(id)
      .catch((dropError) => deps.log.warn({ id, err: (dropError as Error).message }, 'could not drop the held task of a failed upload; it expires on its own'))
  } else {
    deps.log.warn({ id }, 'the upload failed after an original database created its task, which cannot be dropped there; it stays without an image')
  }
}
