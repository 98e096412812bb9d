// The master role: the client API (upload, poll, download) and the worker API, in front of database and storage.
import { t } from 'elysia'
import { Counter, Histogram, type Registry } from 'prom-client'
import type { DatabaseClient, PlainTaskRecord, TaskRecord } from '../../clients/database-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import type { Access } from '../../plugins/access.ts'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import { createUploadLimit } from '../../plugins/upload-limit.ts'
import { NotFound, NotOffered, TooManyRequests } from '../../shared/errors.ts'
import { createGate } from '../../shared/gate.ts'
import type { Logger } from '../../shared/logger.ts'
import { hashTaskKey, newTaskKey, TASK_KEY_HEADER, unknownTask } from '../../shared/task-key.ts'
import { IMAGE_ANSWER_HEADERS, IMAGE_REQUEST_HEADERS, pickHeaders } from '../../shared/wire/headers.ts'
import { ClaimQuery, ErrorText, IdQuery, Success } from '../../shared/wire/params.ts'
import { CountsJson, RecentQuery } from '../../shared/wire/tasks.ts'
import { acceptUpload } from './accept-upload.ts'
import { consoleRoutes } from './console-routes.ts'
import { FailedQuery, FinishedQuery, KeyedIdQuery, KeyedWaitQuery, LeaseQuery, pngRequestBody, pngResponse, RenewQuery, StatusJson } from './model.ts'
import { createTaskAccess, type ReadAccess } from './task-access.ts'
import { createTaskStates, type TaskStates } from './task-states.ts'
import { createTaskWaits, type TaskWaits } from './task-waits.ts'

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

/** The public view of a task: no lease token, no internal flags. */
function statusJson(task: TaskRecord | PlainTaskRecord) {
  if ('plain' in task)
    throw new NotOffered('The database keeps only the original task records ({id, state}): there is no status to show; use /isReady.', '/status')
  return {
    id: task.id,
    state: task.state,
    stateName: task.stateName,
    attempts: task.attempts,
    ...(task.error !== undefined ? { error: task.error } : {}),
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
  }
}

/** Builds the master app; it never listens (the entry file or the launcher does). */
export function createMasterApp(deps: MasterAppDeps) {
  const { database, storage, log, registry } = deps
  const privateResults = deps.privateResults ?? false
  const uploadGate = createGate(deps.maxUploadsInFlight ?? 32, 'uploads')
  // `??`, not a spread default: an explicit undefined must not switch the deadline off.
  const uploadTimeoutSeconds = deps.uploadTimeoutSeconds ?? 300
  const states = deps.taskStates ?? createTaskStates()
  const waits = deps.taskWaits ?? createTaskWaits({ records: databaseRecords(database) })
  const access = createTaskAccess({ privateResults, token: deps.token })
  const limit = createUploadLimit({ ...deps })
  const keyHashOf = (task: TaskRecord | PlainTaskRecord) => ('plain' in task ? undefined : task.keyHash)
  /** The task, if `reader` may see it; the same NotFound for an unknown id and for a task it may not see. */
  const readTask = async (id: number, reader: ReadAccess | undefined): Promise<TaskRecord | PlainTaskRecord> => {
    const task = await database.getById(id)
    if (!access.allows(reader, keyHashOf(task))) throw unknownTask(id)
    return task
  }
  /**
   * Whether the task is finished (NotFound for an unknown one, or one `reader` may not see), from a recent sighting when
   * there is one and it lets `reader` in; otherwise from the database, so that a wrong key costs what an unknown id does.
   */
  const isFinished = async (id: number, reader: ReadAccess | undefined): Promise<boolean> => {
    const known = states.get(id)
    if (known !== undefined && access.allows(reader, known.keyHash)) return known.state === 2
    const task = await readTask(id, reader)
    states.set(id, task.state, keyHashOf(task))
    return task.state === 2
  }
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
    .post(
      '/new',
      async ({ request, server, set }) => {
        try {
          // Before a byte of the body is read: a flood costs the master nothing but this answer.
          limit.admit(request, server)
          const key = privateResults ? newTaskKey() : undefined
          const keyHash = key === undefined ? undefined : hashTaskKey(key)
          const { id, header } = await uploadGate.run(() => acceptUpload(request, { ...deps, uploadTimeoutSeconds, keyHash }))
          uploads.inc({ outcome: 'accepted' })
          log.info({ id, width: header.width, height: header.height }, 'upload accepted')
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
    .get('/isReady', async ({ query, request }) => ((await isFinished(Number(query.id), access.of(request, query.key))) ? '1' : '0'), {
      access: reads,
      query: KeyedIdQuery,
      response: { 200: t.Union([t.Literal('0'), t.Literal('1')]), 404: ErrorText },
      detail: { summary: '`1` when the task is finished, else `0` (also for a failed task; see /status)', tags: ['client'] },
    })
    .get(
      '/get',
      async ({ query, request }) => {
        const id = Number(query.id)
        if (!(await isFinished(id, access.of(request, query.key)))) throw new NotFound(`Task ${id} is not finished.`)
        const stored = await storage.get(id, 'finished', { headers: pickHeaders(request.headers, IMAGE_REQUEST_HEADERS) })
        // Bun keeps the Content-Length of a streamed body only when the stream has arrived whole by the time it answers; a
        // larger image goes out chunked (oven-sh/bun#10507).
        return new Response(stored.body, { status: stored.status, headers: pickHeaders(stored.headers, IMAGE_ANSWER_HEADERS) })
      },
      {
        access: reads,
        query: KeyedIdQuery,
        // The PNG answer is declared in `detail.responses`: a `response` schema would replace it with JSON.
        detail: {
          summary: 'The finished PNG; 404 while the task is not finished',
          tags: ['client'],
          responses: { 200: pngResponse, 404: { description: 'Unknown or unfinished task', content: { 'text/plain': { schema: { type: 'string' } } } } },
        },
      },
    )
    .get('/status', async ({ query, request }) => statusJson(await readTask(Number(query.id), access.of(request, query.key))), {
      access: reads,
      query: KeyedIdQuery,
      response: { 200: StatusJson, 404: ErrorText },
      detail: { summary: 'The task’s state, attempts and last error', tags: ['client'] },
    })
    .get(
      '/wait',
      async ({ query, request }) => {
        const reader = access.of(request, query.key)
        const allowed = reader === undefined ? undefined : (record: TaskRecord) => access.allows(reader, record.keyHash)
        return statusJson(await waits.wait(Number(query.id), Number(query.timeout ?? 30) * 1000, request.signal, allowed))
      },
      {
        access: reads,
        query: KeyedWaitQuery,
        response: { 200: StatusJson, 400: ErrorText, 404: ErrorText },
        detail: {
          summary: 'The task’s status as soon as it is finished or failed, or after `timeout` seconds as it is then',
          description:
            'Answers with the same JSON as `/status`: at once for a task that has ended, else when it ends, else after `timeout` ' +
            '(1-60 s, default 30) with its state then (200; ask again). All the waits of a master share one poll of the database.',
          tags: ['client'],
        },
      },
    )
    .get(
      '/tasks',
      async ({ query }) =>
        (
          await database.recentTasks({
            state: query.state === undefined ? undefined : Number(query.state),
            limit: query.limit === undefined ? undefined : Number(query.limit),
            before: query.before === undefined ? undefined : Number(query.before),
          })
        ).map(statusJson),
      {
        access: everyones,
        query: RecentQuery,
        response: { 200: t.Array(StatusJson), 400: ErrorText },
        detail: {
          summary: 'The newest tasks, newest first, optionally in one state (limit 1-200, default 50)',
          description: '`before=<id>`: only tasks with a smaller id; pass the last id of a page to get the next, which new uploads do not move.',
          tags: ['operators'],
        },
      },
    )
    .use(consoleRoutes(database, deps.clock ?? Date.now, everyones))
    .get('/counts', () => database.counts(), {
      access: 'public',
      response: { 200: CountsJson },
      detail: { summary: 'How many tasks are in each state', tags: ['operators'] },
    })
    .post(
      '/getNewTask',
      async ({ query, request, set }) => {
        // A worker gone away (closing) ends the wait at the database too, which then gives back a claim made meanwhile.
        const claim = await database.getNewTask({ waitSeconds: Number(query.wait ?? 0), signal: request.signal })
        events.inc({ event: 'claimed' })
        set.headers['content-type'] = 'application/json; charset=utf-8'
        return claim
      },
      {
        query: ClaimQuery,
        response: { 200: t.String({ description: 'The claimed task as JSON, with `leaseToken`' }), 404: ErrorText },
        detail: {
          summary: 'Claim the oldest not-started task (worker API)',
          description:
            'Answers `Error: No non-started task.` (404) when there is none. With `wait=S` (0-60) the call is held until a task can ' +
            'be claimed or S seconds pass, so that an idle worker hears of a new task at once instead of polling.',
          tags: ['worker'],
        },
      },
    )
    .post(
      '/registerTaskFinished',
      async ({ query }) => {
        await database.finishTask(Number(query.id), query.lease)
        states.forget(Number(query.id))
        waits.changed(Number(query.id))
        events.inc({ event: 'finished' })
        if (query.ms !== undefined) processing.observe(Number(query.ms) / 1000)
        return 'success' as const
      },
      {
        query: FinishedQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Mark a task in progress finished (worker API)', tags: ['worker'] },
      },
    )
    .post(
      '/registerTaskFailed',
      async ({ query }) => {
        states.forget(Number(query.id))
        await database.failTask(Number(query.id), query.error, query.lease)
        waits.changed(Number(query.id))
        events.inc({ event: 'failed' })
        return 'success' as const
      },
      {
        query: FailedQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Count a failed attempt (worker API)', tags: ['worker'] },
      },
    )
    .post(
      '/renewTask',
      async ({ query, set }) => {
        const renewed = await database.renewTask(Number(query.id), query.lease)
        set.headers['content-type'] = 'application/json; charset=utf-8'
        return renewed
      },
      {
        query: RenewQuery,
        response: { 200: t.String(), 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Extend the lease of a claim (worker API)', tags: ['worker'] },
      },
    )
    .post(
      '/releaseTask',
      async ({ query }) => {
        states.forget(Number(query.id))
        await database.releaseTask(Number(query.id), query.lease)
        events.inc({ event: 'released' })
        return 'success' as const
      },
      {
        query: LeaseQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Give a claim back at once, no attempt counted (worker API, on shutdown)', tags: ['worker'] },
      },
    )
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
