// POST /new without lost or phantom work: reserve a held task, stream the image to storage, then activate the task.
import type { DatabaseClient } from '../../clients/database-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import { collectionPace, declaredLength, peekBody } from '../../shared/body-stream.ts'
import { BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { hasPngSignature, PNG_HEADER_BYTES, type PngHeader, parsePngHeader } from '../../shared/png-header.ts'

export interface UploadDeps {
  readonly database: DatabaseClient
  readonly storage: StorageClient
  readonly maxUploadBytes: number
  /** PIXMILL_UPLOAD_TIMEOUT_SECONDS: the whole body must have arrived by then. */
  readonly uploadTimeoutSeconds: number
  readonly log: Logger
  /** The hash of the task key of a private result, kept with the task. */
  readonly keyHash?: string
}

export interface AcceptedUpload {
  readonly id: number
  readonly header: PngHeader
}

/**
 * Checks the PNG signature and IHDR from the first bytes, then streams the body to storage under a held task.
 * The task becomes claimable only after storage said `success`; on any failure it is dropped, so no worker ever
 * gets a task without its image, and every id answered has its image stored. An original database has no held tasks:
 * there the task is created claimable, as the original master did.
 */
export async function acceptUpload(request: Request, deps: UploadDeps): Promise<AcceptedUpload> {
  const limit = deps.maxUploadBytes
  const length = declaredLength(request)
  if (length !== undefined && length > limit) throw new PayloadTooLarge(limit)
  if (!request.body || length === 0) throw new BadRequest('The body is empty: send the PNG as the raw request body.')
  const body = await peekBody(request.body, PNG_HEADER_BYTES, limit, deps.uploadTimeoutSeconds, collectionPace(length))
  if (body.head.byteLength === 0) throw new BadRequest('The body is empty: send the PNG as the raw request body.')
  if (!hasPngSignature(body.head)) {
    await body.stream.cancel().catch(() => {})
    throw new UnsupportedMediaType('The body is not a PNG (it does not start with the PNG signature).')
  }
  const parsed = parsePngHeader(body.head)
  if ('problem' in parsed) {
    await body.stream.cancel().catch(() => {})
    throw new BadRequest(`Not a valid PNG: ${parsed.problem}.`)
  }
  let reservation: Awaited<ReturnType<DatabaseClient['reserveTask']>>
  try {
    reservation = await deps.database.reserveTask({ keyHash: deps.keyHash })
  } catch (error) {
    await body.stream.cancel().catch(() => {})
    throw error
  }
  const { id, held } = reservation
  try {
    await deps.storage.send(id, 'working', body.stream, { contentLength: length })
  } catch (error) {
    if (held) {
      await deps.database
        .dropTask(id)
        .catch((dropError) =>
          deps.log.warn({ id, err: (dropError as Error).message }, 'could not drop the held task of a failed upload; it expires on its own'),
        )
    } else {
      deps.log.warn({ id }, 'the upload failed after an original database created its task, which cannot be dropped there; it stays without an image')
    }
    const failure = body.failure()
    if (failure === 'too-large') throw new PayloadTooLarge(limit)
    if (failure === 'too-slow') throw new RequestTimeout(deps.uploadTimeoutSeconds)
    if (failure === 'source-failed') throw new BadRequest('The upload was interrupted before the whole body arrived.')
    throw error
  }
  if (held) await deps.database.activateTask(id)
  return { id, header: parsed.header }
}
