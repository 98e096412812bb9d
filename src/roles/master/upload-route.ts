// `POST /new` of the master: the upload limit, the gate on uploads in flight, and the task key of a private result.
import { Elysia, t } from 'elysia'
import { accessMacro } from '../../plugins/access.ts'
import { createUploadLimit, type UploadLimitOptions } from '../../plugins/upload-limit.ts'
import { TooManyRequests } from '../../shared/errors.ts'
import { createGate } from '../../shared/gate.ts'
import type { Counter } from '../../shared/prom.ts'
import { hashTaskKey, newTaskKey, TASK_KEY_HEADER } from '../../shared/task-key.ts'
import { ErrorText } from '../../shared/wire/params.ts'
import { acceptUpload, createUploadPeers, type UploadDeps } from './accept-upload.ts'
import { pngRequestBody } from './model.ts'

export interface UploadRouteDeps extends Omit<UploadDeps, 'uploadTimeoutSeconds' | 'keyHash' | 'peers'>, UploadLimitOptions {
  readonly privateResults: boolean
  /** PIXMILL_UPLOAD_TIMEOUT_SECONDS. Default 300. */
  readonly uploadTimeoutSeconds?: number
  /** PIXMILL_MAX_UPLOADS_IN_FLIGHT. Default 32. */
  readonly maxUploadsInFlight?: number
}

/** `POST /new`; `uploads` counts each upload by outcome. */
export function uploadRoute(deps: UploadRouteDeps, uploads: Counter<'outcome'>) {
  const { log, privateResults } = deps
  const uploadGate = createGate(deps.maxUploadsInFlight ?? 32, 'uploads')
  // `??`, not a spread default: an explicit undefined must not switch the deadline off.
  const uploadTimeoutSeconds = deps.uploadTimeoutSeconds ?? 300
  const limit = createUploadLimit({ ...deps })
  const peers = createUploadPeers()
  return new Elysia().use(accessMacro()).post(
    '/new',
    async ({ request, server, set }) => {
      try {
        // Before a byte of the body is read: a flood costs the master nothing but this answer.
        limit.admit(request, server)
        const key = privateResults ? newTaskKey() : undefined
        const keyHash = key === undefined ? undefined : hashTaskKey(key)
        const { id, size } = await uploadGate.run(() => acceptUpload(request, { ...deps, uploadTimeoutSeconds, keyHash, peers }))
        uploads.inc({ outcome: 'accepted' })
        log.info({ id, width: size.width, height: size.height }, 'upload accepted')
        if (key !== undefined) {
          set.headers[TASK_KEY_HEADER] = key
          // The key is a secret: no cache along the way keeps the answer.
          set.headers['cache-control'] = 'no-store'
        }
        return String(id)
      } catch (error) {
        uploads.inc({ outcome: error instanceof TooManyRequests ? 'limited' : 'refused' })
        throw error
      }
    },
    {
      access: 'public',
      parse: 'none',
      response: {
        200: t.String({
          description: 'The new task id, as text; with PIXMILL_PRIVATE_RESULTS the `X-Task-Key` header holds the key that reading the task needs',
        }),
        400: ErrorText,
        408: ErrorText,
        413: ErrorText,
        415: ErrorText,
        429: ErrorText,
        502: ErrorText,
        503: ErrorText,
      },
      detail: {
        summary: 'Upload a PNG; answers the new task id',
        description:
          'With PIXMILL_PRIVATE_RESULTS the answer has an `X-Task-Key` header: the task’s key, which `/isReady`, `/get`, `/status` and `/wait` ' +
          'then need (`key=` or the same header). With PIXMILL_UPLOADS_PER_MINUTE a client over its allowance gets `429` with `Retry-After`.',
        tags: ['client'],
        requestBody: pngRequestBody,
      },
    },
  )
}
