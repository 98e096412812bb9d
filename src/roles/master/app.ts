// The master role: the client API (upload, poll, download) and the worker API, in front of database and storage; composed here from the route modules.

import type { DatabaseClient, TaskRecord } from '../../clients/database-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import type { Access } from '../../plugins/access.ts'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import { NotOffered } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { Counter, Histogram, type Registry } from '../../shared/prom.ts'
import { ErrorText, IdQuery, Success } from '../../shared/wire/params.ts'
import { CountsJson } from '../../shared/wire/tasks.ts'
import { consoleRoutes } from './console-routes.ts'
import { readRoutes } from './read-routes.ts'
import { createTaskAccess } from './task-access.ts'
import { createTaskStates, type TaskStates } from './task-states.ts'
import { createTaskWaits, type TaskWaits } from './task-waits.ts'
import { uploadRoute } from './upload-route.ts'
import { workerRoutes } from './worker-routes.ts'

export interface MasterAppDeps {
  /** PIXMILL_TOKEN: when set, the internal routes want it. */
  readonly token?: string
  /** PIXMILL_IDLE_TIMEOUT_SECONDS. */
  readonly idleTimeoutSeconds?: number
  readonly database: DatabaseClient
  readonly storage: StorageClient
  readonly log: Logger
  readonly registry: Registry
  readonly maxUploadBytes: number
  /** PIXMILL_UPLOAD_TIMEOUT_SECONDS. Default 300. */
  readonly uploadTimeoutSeconds?: number
  /** PIXMILL_MAX_UPLOADS_IN_FLIGHT: more uploads at once get 503 with Retry-After. Default 32. */
  readonly maxUploadsInFlight?: number
  /** The waits of `GET /wait` (the caller closes it when stopping). Default: one over `database`. */
  readonly taskWaits?: TaskWaits
  /** Unfinished task states seen lately (default: trusted 250 ms). */
  readonly taskStates?: TaskStates
  /** Whether database and storage answer; feeds /health. */
  readonly dependenciesHealthy: () => Promise<Record<string, boolean>>
  /** PIXMILL_PRIVATE_RESULTS: uploads answer a task key that reads of the task need (or the token). Default false. */
  readonly privateResults?: boolean
  /** PIXMILL_UPLOADS_PER_MINUTE: uploads one client may make per minute (429 beyond). Default: no limit. */
  readonly uploadsPerMinute?: number
  /** PIXMILL_TRUST_PROXY: proxies in front of the master whose X-Forwarded-For is believed. Default 0. */
  readonly trustProxy?: number
  /** PIXMILL_CORS_ORIGINS. Default: no cross-origin access. */
  readonly corsOrigins?: readonly string[] | '*'
  /** The upload limit's clock (monotonic ms), for tests. */
  readonly now?: () => number
  /** Epoch ms, for the windows of `/history`. Default Date.now. */
  readonly clock?: () => number
}

/** The records of several tasks, for the waits; NotOffered from an original database, which has no task records to show. */
export function databaseRecords(database: DatabaseClient) {
  return async (ids: readonly number[]): Promise<Map<number, TaskRecord>> => {
    const found = new Map<number, TaskRecord>()
    for (const [id, task] of await database.getByIds(ids)) {
      if ('plain' in task)
        throw new NotOffered('The database keeps only the original task records ({id, state}): there is nothing to wait on; poll /isReady.', '/wait')
      found.set(id, task)
    }
    return found
  }
}

/** Builds the master app; it never listens (the entry file or the launcher does). */
export function createMasterApp(deps: MasterAppDeps) {
  const { database, storage, log, registry } = deps
  const privateResults = deps.privateResults ?? false
  const states = deps.taskStates ?? createTaskStates()
  const waits = deps.taskWaits ?? createTaskWaits({ records: databaseRecords(database) })
  const access = createTaskAccess({ privateResults, token: deps.token })
  const uploads = new Counter({ name: 'pixmill_uploads_total', help: 'Uploads to POST /new, by outcome.', labelNames: ['outcome'], registers: [registry] })
  const events = new Counter({
    name: 'pixmill_master_task_events_total',
    help: 'Task events seen by the master: claimed, finished, failed, released, retried, deleted.',
    labelNames: ['event'],
    registers: [registry],
  })
  const processing = new Histogram({
    name: 'pixmill_image_processing_seconds',
    help: 'Claim-to-finish time of each processed image, as the worker reports it.',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  })
  /** A task's reads: open, and with private results they want the task's key (or the token). */
  const reads: Access = privateResults ? 'keyed' : 'public'
  /**
   * Lists of everyone's tasks (ids, times, failures) and their timelines: with private results for operators only; the
   * counts and the history (numbers about all tasks) stay open.
   */
  const everyones: Access = privateResults ? 'internal' : 'public'
  const app = roleKit({
    role: 'master',
    token: deps.token,
    // Uploads and the worker API get an id at the edge; a poll from outside logs nothing and needs none.
    requestIds: 'writes',
    // The edge: a client's request starts a trace when it brings none. A worker's claim belongs to no trace (its task's
    // trace is the upload's, stored with the task).
    traceRoots: (path) => path !== '/getNewTask',
    // The worker API, `/retryTask` and `/deleteTask` are internal (they declare nothing); the client API is open.
    taskKeys: privateResults,
    corsOrigins: deps.corsOrigins,
    idleTimeoutSeconds: deps.idleTimeoutSeconds,
    description:
      'Upload a PNG with `POST /new` (the raw PNG as the body; here, "Try it out" offers a file picker), poll `GET /isReady` or ' +
      '`GET /status`, and download the result with `GET /get`. Workers use `/getNewTask`, `/registerTaskFinished`, `/registerTaskFailed` and `/renewTask`.',
    log,
    registry,
    // Bun's own limit stays far above ours, so that the role answers 413 itself, with an `Error:` body.
    maxRequestBodySize: deps.maxUploadBytes * 2 + 1024 * 1024,
    health: async () => {
      const peers = await deps.dependenciesHealthy()
      return { ok: Object.values(peers).every(Boolean), ...peers }
    },
  })
    .use(uploadRoute({ ...deps, privateResults }, uploads))
    .use(readRoutes({ database, storage, states, waits, access, reads, everyones }))
    .use(consoleRoutes(database, deps.clock ?? Date.now, everyones))
    .get('/counts', () => database.counts(), {
      access: 'public',
      response: { 200: CountsJson },
      detail: { summary: 'How many tasks are in each state', tags: ['operators'] },
    })
    .use(workerRoutes({ database, states, waits, events, processing }))
    .post(
      '/retryTask',
      async ({ query }) => {
        states.forget(Number(query.id))
        await database.retryTask(Number(query.id))
        events.inc({ event: 'retried' })
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Try a failed task again (operators)', tags: ['operators'] },
      },
    )
    .post(
      '/deleteTask',
      async ({ query }) => {
        states.forget(Number(query.id))
        await database.deleteTask(Number(query.id))
        events.inc({ event: 'deleted' })
        log.info({ id: Number(query.id) }, 'task deleted by an operator')
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText, 503: ErrorText },
        detail: {
          summary: 'Remove a finished or failed task with both its images (operators)',
          description:
            '`409` for a task waiting or in progress, which stays as it was; `404` for an unknown id. From then on every read answers 404 for the id, which is never given again.',
          tags: ['operators'],
        },
      },
    )
  return finishRole(app)
}
