// The frontend role: the web page and its upload form, the status board, and the original pass-through endpoints.
import { t } from 'elysia'
import type { MasterPublicClient } from '../../clients/master-public-client.ts'
import type { Access } from '../../plugins/access.ts'
import { bearerMatches, tokenDigest } from '../../plugins/auth.ts'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import { createUploadLimit } from '../../plugins/upload-limit.ts'
import { HttpError, TooManyRequests } from '../../shared/errors.ts'
import { createGate } from '../../shared/gate.ts'
import type { Logger } from '../../shared/logger.ts'
import { Counter, Gauge, type Registry } from '../../shared/prom.ts'
import { TASK_KEY_HEADER, unknownTask } from '../../shared/task-key.ts'
import { IMAGE_ANSWER_HEADERS, pickHeaders } from '../../shared/wire/headers.ts'
import { ErrorText, IdQuery, Success } from '../../shared/wire/params.ts'
import { acceptSubmission, FILE_FIELD, FORM_OVERHEAD_BYTES, humanBytes } from './accept-submission.ts'
import { boardFigures } from './board.ts'
import type { BoardFeed } from './board-feed.ts'
import { consoleRoutes } from './console-routes.ts'
import { eventStream, sseFrame } from './event-stream.ts'
import {
  BoardJson,
  ConfigJson,
  EventsQuery,
  eventsResponses,
  getImageResponses,
  KeyedIdQuery,
  submitResponses,
  TaskStatusJson,
  uploadFormBody,
} from './model.ts'
import { checkPageFiles, PAGE_SECURITY_HEADERS, pageFile } from './static-pages.ts'
import { renderTaskPage, renderUnknownTaskPage } from './task-page.ts'
import { createTaskWatch, type TaskWatch, type WatchEvent, type WatchTarget } from './task-watch.ts'
import type { WorkerDirectory } from './worker-directory.ts'

export interface FrontendAppDeps {
  /** PIXMILL_TOKEN: when set, the internal routes want it. */
  readonly token?: string
  /** PIXMILL_IDLE_TIMEOUT_SECONDS. */
  readonly idleTimeoutSeconds?: number
  readonly master: MasterPublicClient
  readonly log: Logger
  readonly registry: Registry
  /** The largest PNG accepted (PIXMILL_MAX_UPLOAD_BYTES). */
  readonly maxUploadBytes: number
  /** The shared poll behind `/api/events`; default: one over `master.status`. The caller closes it when stopping. */
  readonly watch?: TaskWatch
  /** PIXMILL_MAX_UPLOADS_IN_FLIGHT: more uploads at once get 503 with Retry-After. Default 32. */
  readonly maxUploadsInFlight?: number
  /** The live workers the board lists; without it, the board lists none. */
  readonly workers?: WorkerDirectory
  /** A task's stored image (`working` or `finished`), for its console page. */
  readonly image?: (id: number, area: 'working' | 'finished') => Promise<Response>
  /** The board's live feed (boardFeedOf); the caller closes it when stopping. Without it, no console routes. */
  readonly boardFeed?: BoardFeed
  /**
   * PIXMILL_PRIVATE_RESULTS: a task's pages and answers want its key (`key=` or X-Task-Key), which the upload answered,
   * or the caller's token (an operator). The frontend holds the token, which the master would take instead of a key: so
   * the frontend itself refuses a read with neither, and passes every key on for the master to check. Default false.
   */
  readonly privateResults?: boolean
  /** PIXMILL_UPLOADS_PER_MINUTE: uploads one client may make per minute (429 beyond). Default: no limit. */
  readonly uploadsPerMinute?: number
  /** PIXMILL_TRUST_PROXY: proxies in front of the frontend whose X-Forwarded-For is believed. Default 0. */
  readonly trustProxy?: number
  /** PIXMILL_CORS_ORIGINS. Default: no cross-origin access. */
  readonly corsOrigins?: readonly string[] | '*'
  /** The upload limit's clock (monotonic ms), for tests. */
  readonly now?: () => number
}

/** Requests of people and clients that start a trace when tracing is on (with /api/*). */
const TRACED_PATHS = new Set(['/submitTask', '/isReady', '/getImage', '/task', '/board/tasks', '/board/task'])

/** One task watch's event as a server-sent event. */
function watchFrame(event: WatchEvent): string {
  const data = event.type === 'status' ? event.task : event.type === 'unknown' ? { id: event.id } : event.type === 'trouble' ? { message: event.message } : {}
  return sseFrame(event.type, data)
}

const isNotFound = (error: unknown) => error instanceof HttpError && error.status === 404

/** Builds the frontend app; it never listens (the entry file or the launcher does). */
export function createFrontendApp(deps: FrontendAppDeps) {
  const { master, log, registry, maxUploadBytes } = deps
  const privateResults = deps.privateResults ?? false
  const watch = deps.watch ?? createTaskWatch({ status: (id, key) => master.status(id, key), log })
  const limit = createUploadLimit({ ...deps })
  const tokenExpected = deps.token === undefined ? undefined : tokenDigest(deps.token)
  /**
   * The key a read of task `id` brings (`key=`, else the X-Task-Key header), passed on to the master whatever the setting;
   * with private results none is an unknown task here, unless the caller has the token: as at the master.
   */
  const keyOf = (id: number, request: Request, queryKey: string | undefined): string | undefined => {
    const key = queryKey ?? request.headers.get(TASK_KEY_HEADER) ?? undefined
    if (privateResults && key === undefined && !(tokenExpected !== undefined && bearerMatches(request.headers.get('authorization'), tokenExpected))) {
      throw unknownTask(id)
    }
    return key
  }
  checkPageFiles()
  // The page names the default limit; a browser without JavaScript gets the configured one instead.
  const limitText = { '<span id="limit">50 MiB</span>': `<span id="limit">${humanBytes(maxUploadBytes)}</span>` }
  const uploads = new Counter({
    name: 'pixmill_frontend_uploads_total',
    help: 'Uploads to POST /submitTask, by outcome.',
    labelNames: ['outcome'],
    registers: [registry],
  })
  const streams = new Gauge({ name: 'pixmill_frontend_event_streams', help: 'Open /api/events streams (pages watching tasks).', registers: [registry] })
  new Gauge({
    name: 'pixmill_frontend_watched_tasks',
    help: 'Tasks whose state the frontend is polling for open pages.',
    registers: [registry],
    collect() {
      this.set(watch.size())
    },
  })

  const readBoard = () => boardFigures(master, deps.workers)
  const feed = deps.boardFeed

  const uploadGate = createGate(deps.maxUploadsInFlight ?? 32, 'uploads')
  /** A task's reads: open, and with private results they want the task's key (or the token), as at the master. */
  const reads: Access = privateResults ? 'keyed' : 'public'
  /** The board's lists of everyone's tasks: with private results for operators, as the master's /tasks is. */
  const everyones: Access = privateResults ? 'internal' : 'public'
  const app = roleKit({
    role: 'frontend',
    token: deps.token,
    // `/api/retry` and `/api/delete` are internal (they declare nothing); the pages and the rest of the API are open.
    taskKeys: privateResults,
    corsOrigins: deps.corsOrigins,
    // The edge: what a person does starts a trace (the page's own files do not).
    traceRoots: (path) => TRACED_PATHS.has(path) || path.startsWith('/api/'),
    idleTimeoutSeconds: deps.idleTimeoutSeconds,
    description:
      'The web page (`/`) and the status board (`/board`). The original endpoints: `POST /submitTask` (a multipart form with the PNG in ' +
      '`uploadfile`; answers the task id), `GET /isReady` and `GET /getImage`, passed on to the master. The `/api/*` endpoints feed the page and the board.',
    log,
    registry,
    // Bun's own limit stays above ours (plus the form's overhead), so that the role answers 413 itself, with an `Error:` body.
    maxRequestBodySize: maxUploadBytes * 2 + FORM_OVERHEAD_BYTES + 1024 * 1024,
    health: async () => {
      const ok = await master.healthy()
      return { ok, master: ok ? 'healthy' : 'unreachable or unhealthy' }
    },
  })
    // The pages and their files hold no data: the board's page fetches its figures from /api/board.
    .guard({ access: 'public' }, (pages) =>
      pages
        .get('/', () => pageFile('/', limitText), { detail: { summary: 'The upload page (HTML)', tags: ['page'] } })
        .get('/board', () => pageFile('/board'), { detail: { summary: 'The status board for operators (HTML)', tags: ['page'] } })
        .get('/app.js', () => pageFile('/app.js'), { detail: { hide: true } })
        .get('/live.js', () => pageFile('/live.js'), { detail: { hide: true } })
        .get('/board.js', () => pageFile('/board.js'), { detail: { hide: true } })
        .get('/operator.js', () => pageFile('/operator.js'), { detail: { hide: true } })
        .get('/charts.js', () => pageFile('/charts.js'), { detail: { hide: true } })
        .get('/style.css', () => pageFile('/style.css'), { detail: { hide: true } }),
    )
    .post(
      '/submitTask',
      async ({ request, server }) => {
        try {
          // The client is passed on to the master, whose own limit then counts it rather than this role.
          const client = limit.admit(request, server)
          const { id, key, respond } = await uploadGate.run(() => acceptSubmission(request, { master, maxUploadBytes, clientAddress: client }))
          uploads.inc({ outcome: 'accepted' })
          log.info({ id }, 'upload accepted')
          // The key is a secret: no cache along the way keeps an answer that carries it.
          const keyed: Record<string, string> = key === undefined ? {} : { [TASK_KEY_HEADER]: key, 'cache-control': 'no-store' }
          // A browser without JavaScript goes on to the task's page (POST, redirect, GET); every other client gets the id.
          if (respond === 'page') {
            const location = `/task?id=${id}${key === undefined ? '' : `&key=${encodeURIComponent(key)}`}`
            return new Response(null, { status: 303, headers: { location, ...keyed } })
          }
          return new Response(String(id), { headers: { 'content-type': 'text/plain; charset=utf-8', ...keyed } })
        } catch (error) {
          uploads.inc({ outcome: error instanceof TooManyRequests ? 'limited' : error instanceof HttpError && error.status < 500 ? 'refused' : 'failed' })
          throw error
        }
      },
      {
        access: 'public',
        parse: 'none',
        detail: { summary: 'Upload a PNG in a form; answers the new task id', tags: ['client'], requestBody: uploadFormBody, responses: submitResponses },
      },
    )
    .get('/isReady', ({ query, request }) => master.isReady(Number(query.id), keyOf(Number(query.id), request, query.key)), {
      access: reads,
      query: KeyedIdQuery,
      response: { 200: t.String({ description: '`1` when the task is finished, else `0`' }), 404: ErrorText },
      detail: { summary: '`1` when the task is finished, else `0`, as the master answers', tags: ['client'] },
    })
    .get(
      '/getImage',
      async ({ query, request }) => {
        const image = await master.getImage(Number(query.id), request, keyOf(Number(query.id), request, query.key))
        return new Response(image.body, { status: image.status, headers: pickHeaders(image.headers, IMAGE_ANSWER_HEADERS) })
      },
      { access: reads, query: KeyedIdQuery, detail: { summary: 'The finished PNG, as the master answers it', tags: ['client'], responses: getImageResponses } },
    )
    .get(
      '/task',
      async ({ query, request }) => {
        const id = Number(query.id)
        const headers = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...PAGE_SECURITY_HEADERS }
        try {
          const key = keyOf(id, request, query.key)
          return new Response(renderTaskPage(await master.status(id, key), key), { headers })
        } catch (error) {
          if (isNotFound(error)) return new Response(renderUnknownTaskPage(id), { status: 404, headers })
          throw error
        }
      },
      {
        access: reads,
        query: KeyedIdQuery,
        detail: { summary: 'One task’s page for a browser without JavaScript (reloads itself until done)', tags: ['page'] },
      },
    )
    .get('/api/config', () => ({ maxUploadBytes, field: FILE_FIELD }) as const, {
      access: 'public',
      response: { 200: ConfigJson },
      detail: { summary: 'What the page checks before uploading', tags: ['page API'] },
    })
    .get('/api/status', ({ query, request }) => master.status(Number(query.id), keyOf(Number(query.id), request, query.key)), {
      access: reads,
      query: KeyedIdQuery,
      response: { 200: TaskStatusJson, 404: ErrorText },
      detail: { summary: 'A task’s state, attempts and last error', tags: ['page API'] },
    })
    .get(
      '/api/events',
      ({ query, request, server }) => {
        const ids = query.ids.split(',').map(Number)
        // `keys` follows `ids` one for one (an empty place: no key). With private results a task without a key is unknown
        // at once, and never polled: the frontend's token must not stand in for it.
        const keys = query.keys?.split(',') ?? []
        const targets: WatchTarget[] = ids.map((id, i) => (keys[i] ? { id, key: keys[i] } : { id }))
        const watched = privateResults ? targets.filter((target) => target.key !== undefined) : targets
        const unknownAtOnce = targets.filter((target) => !watched.includes(target))
        return eventStream({
          request,
          server,
          opened: () => streams.inc(),
          closed: () => streams.dec(),
          start(write, end) {
            for (const { id } of unknownAtOnce) write(watchFrame({ type: 'unknown', id }))
            return watch.subscribe(watched, (event) => (event.type === 'closing' ? end() : write(watchFrame(event))))
          },
        })
      },
      // Open: it takes its keys in `keys=` only (a browser's EventSource sends no header), and checks them itself.
      {
        access: 'public',
        query: EventsQuery,
        detail: { summary: 'Live states of the given tasks (server-sent events)', tags: ['page API'], responses: eventsResponses },
      },
    )
    .get('/api/board', () => readBoard(), {
      access: everyones,
      response: { 200: BoardJson, 502: ErrorText, 503: ErrorText },
      detail: { summary: 'What the status board shows: counts, latest and failed tasks, the live workers', tags: ['operators'] },
    })
    .post(
      '/api/retry',
      async ({ query }) => {
        await master.retry(Number(query.id))
        log.info({ id: Number(query.id) }, 'failed task put back for another try from the board')
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Try a failed task again (passed on to the master’s /retryTask)', tags: ['operators'] },
      },
    )
    .post(
      '/api/delete',
      async ({ query }) => {
        await master.deleteTask(Number(query.id))
        log.info({ id: Number(query.id) }, 'task deleted from the board or the page')
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Remove a finished or failed task with its images (passed on to the master’s /deleteTask)', tags: ['operators'] },
      },
    )
  const withConsole =
    deps.image && feed
      ? app.use(consoleRoutes({ master, source: master, feed, image: deps.image, workers: deps.workers, token: deps.token, privateResults, log }))
      : app
  return finishRole(withConsole)
}
