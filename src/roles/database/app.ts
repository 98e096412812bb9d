// The database role: task records, atomic claims and leases.
import { t } from 'elysia'
import { Counter, Gauge, type Registry } from 'prom-client'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import type { Clock } from '../../shared/clock.ts'
import { NotFound } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { currentRequestId } from '../../shared/request-context.ts'
import { acceptedTraceparent } from '../../shared/trace-context.ts'
import { ClaimQuery, ErrorText, IdQuery, Success } from '../../shared/wire/params.ts'
import { type ClaimWaits, createClaimWaits } from './claim-waits.ts'
import { consoleRoutes } from './console-routes.ts'
import {
  ClaimJson,
  CountsJson,
  FailQuery,
  IdLeaseQuery,
  IdsQuery,
  RecentQuery,
  RenewQuery,
  ReserveQuery,
  SetByIdBody,
  TaskJson,
  TaskRecordJson,
  taskJson,
  taskRecordJson,
} from './model.ts'
import type { Removal } from './removal.ts'
import type { ReportsSharedFigures } from './shared-figures.ts'
import { STATE_NAMES, type TaskState, type TaskStore } from './task-store.ts'

export interface DatabaseAppDeps {
  /** PIXMILL_TOKEN: when set, the internal routes want it. */
  readonly token?: string
  /** PIXMILL_IDLE_TIMEOUT_SECONDS. */
  readonly idleTimeoutSeconds?: number
  readonly store: TaskStore
  /** Removes tasks with their images (the retention sweep and `/deleteTask`). */
  readonly removal: Removal
  /** Claims held until a task can be claimed; the caller closes it when stopping. Default: one over `store`. */
  readonly claimWaits?: ClaimWaits
  readonly log: Logger
  readonly registry: Registry
  /**
   * Whether this instance reports the store's figures (tasks per state): with PostgreSQL every instance sees the same
   * tasks, and only one may export them, or a sum over the instances counts each task once per instance. Default: always.
   */
  readonly reportsSharedFigures?: ReportsSharedFigures
  /** Epoch ms, for the history's buckets up to now; the store's clock in tests. Default Date.now. */
  readonly now?: () => number
}

const NO_TASK = 'No non-started task.'

function taskMetrics(registry: Registry, store: TaskStore, reports: ReportsSharedFigures) {
  const reporting = () => reports().catch(() => true)
  new Gauge({
    name: 'pixmill_tasks_reporting',
    help: '1 on the one database instance that exports pixmill_tasks for the store they share, 0 on the others.',
    registers: [registry],
    async collect() {
      this.set((await reporting()) ? 1 : 0)
    },
  })
  new Gauge({
    name: 'pixmill_tasks',
    help: 'Tasks per state, in the whole store (exported by one database instance of those sharing it).',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      if (!(await reporting())) return this.reset()
      // A store that is down keeps the last figures: /metrics must still answer (it is how an outage is seen).
      const counts = await store.countByState().catch(() => undefined)
      // Label values in the style of every other label here (snake_case); the JSON of the API keeps its stateName.
      if (counts) for (const state of [0, 1, 2, 3] as const) this.set({ state: STATE_NAMES[state].replace('-', '_') }, counts[state])
    },
  })
  const events = new Counter({
    name: 'pixmill_task_events_total',
    help: 'Task lifecycle events: created, claimed, finished, failed, failed_for_good, lease_expired, released, retried.',
    labelNames: ['event'],
    registers: [registry],
  })
  return (event: string, n = 1) => n > 0 && events.inc({ event }, n)
}

/** Claim waits over `store`, their timers on `clock` (default systemClock): a claim given back when its waiter went away. */
export function createDatabaseClaimWaits(store: TaskStore, clock?: Clock): ClaimWaits {
  return createClaimWaits({
    clock,
    claim: () => store.claim(),
    claimable: () => store.claimable(),
    release: async ({ task, leaseToken }) => void (await store.release(task.id, leaseToken)),
  })
}

/** What removal did: tasks removed by the sweep and by operators, and when the last sweep ended. */
export function removalMetrics(registry: Registry) {
  const removed = new Counter({
    name: 'pixmill_tasks_removed_total',
    help: 'Tasks removed with their images, by the retention sweep (by="sweep") or by an operator (by="operator").',
    labelNames: ['by'],
    registers: [registry],
  })
  const lastSweep = new Gauge({ name: 'pixmill_sweep_last_run_timestamp_seconds', help: 'When the last sweep ended (Unix time).', registers: [registry] })
  return {
    onRemoved: (count: number, by: 'sweep' | 'operator') => removed.inc({ by }, count),
    onSweep: (at: number) => lastSweep.set(at / 1000),
  }
}

/** Builds the database app; it never listens (the entry file or the launcher does). */
export function createDatabaseApp({ store, removal, log, registry, token, idleTimeoutSeconds, ...deps }: DatabaseAppDeps) {
  const count = taskMetrics(registry, store, deps.reportsSharedFigures ?? (async () => true))
  const claimWaits = deps.claimWaits ?? createDatabaseClaimWaits(store)
  new Gauge({
    name: 'pixmill_claims_waiting',
    help: 'Claims held until a task can be claimed (getNewTask?wait=S).',
    registers: [registry],
    collect() {
      this.set(claimWaits.size())
    },
  })
  store.onLeasesExpired((n) => {
    count('lease_expired', n)
    claimWaits.notify()
  })
  const app = roleKit({
    role: 'database',
    // Every route is internal (none declares otherwise): only the master and operators call the database.
    token,
    idleTimeoutSeconds,
    // The roles that call the database send their request id; a bare read from outside needs none.
    requestIds: 'given',
    description:
      'Task records. A task is created held (`/reserveTask`) while its image is uploaded, then `/activateTask` makes it claimable; ' +
      'until then no read shows it. `/newTask` creates a claimable task at once, as the original protocol does. Claims carry a ' +
      'lease that runs out after PIXMILL_LEASE_SECONDS and a token that `/renewTask`, `/finishTask` and `/failTask` check when ' +
      'given; a task whose lease ran out is back at state 0 (one failed attempt) on every read at once.',
    log,
    registry,
    health: async () => ({ ok: await store.healthy() }),
  })
    .post(
      '/newTask',
      async ({ request }) => {
        const id = await store.create({ requestId: currentRequestId(), traceParent: acceptedTraceparent(request.headers.get('traceparent')) })
        count('created')
        claimWaits.notify()
        return String(id)
      },
      {
        response: { 200: t.String({ description: 'The new task id, as text' }) },
        detail: { summary: 'Create a task (state 0), claimable at once', tags: ['original'] },
      },
    )
    .get(
      '/getById',
      async ({ query }) => {
        const task = await store.get(Number(query.id))
        if (!task) throw new NotFound(`No task with id ${query.id}.`)
        return taskRecordJson(task)
      },
      {
        query: IdQuery,
        response: { 200: TaskRecordJson, 404: ErrorText },
        detail: { summary: 'A task as JSON (with `keyHash` when its result is private)', tags: ['original'] },
      },
    )
    .get('/getByIds', async ({ query }) => (await store.getMany(query.ids.split(',').map(Number))).map(taskRecordJson), {
      query: IdsQuery,
      response: { 200: t.Array(TaskRecordJson) },
      detail: { summary: 'Several tasks at once (unknown ids left out): the master’s one poll behind all its `/wait` calls', tags: ['beyond'] },
    })
    .post(
      '/getNewTask',
      async ({ query, request, set }) => {
        let { claim } = await claimWaits.claim(Number(query.wait ?? 0) * 1000, request.signal)
        if (claim && request.signal.aborted) {
          // The caller went away while its claim was made: nobody would work on it, so it goes back at once (the
          // answer below reaches nobody).
          await store.release(claim.task.id, claim.leaseToken).catch(() => {})
          claimWaits.notify()
          claim = undefined
        }
        if (!claim) {
          set.status = 404
          set.headers['content-type'] = 'text/plain; charset=utf-8'
          return `Error: ${NO_TASK}`
        }
        count('claimed')
        log.info({ id: claim.task.id, attempts: claim.task.attempts }, 'task claimed')
        return {
          ...taskJson(claim.task),
          leaseToken: claim.leaseToken,
          ...(claim.task.requestId !== null ? { requestId: claim.task.requestId } : {}),
          ...(claim.task.traceParent !== null ? { traceparent: claim.task.traceParent } : {}),
        }
      },
      {
        query: ClaimQuery,
        response: { 200: ClaimJson, 404: ErrorText },
        detail: {
          summary: 'Claim the oldest not-started task (now state 1, with a lease)',
          description:
            `Answers \`Error: ${NO_TASK}\` (404) when there is none. With \`wait=S\` the call is held until a task can be ` +
            'claimed (answered at once when one is created, activated, released, failed back or retried) or S seconds pass.',
          tags: ['original'],
        },
      },
    )
    .post(
      '/finishTask',
      async ({ query }) => {
        await store.finish(Number(query.id), query.lease)
        count('finished')
        log.info({ id: Number(query.id) }, 'task finished')
        return 'success' as const
      },
      {
        query: IdLeaseQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Finish a task in progress (409 for any other state)', tags: ['original'] },
      },
    )
    .post(
      '/setById',
      async ({ body }) => {
        await store.setState(body.id, body.state)
        if (body.state === 0) claimWaits.notify()
        return 'success' as const
      },
      {
        parse: 'json',
        body: SetByIdBody,
        response: { 200: Success, 400: ErrorText, 404: ErrorText },
        detail: { summary: 'Set the state (0, 1 or 2) of an existing task from a JSON task', tags: ['original'] },
      },
    )
    .get(
      '/list',
      async function* () {
        for await (const task of store.list()) yield `${JSON.stringify(taskJson(task))}\n`
      },
      { detail: { summary: 'Every task, one JSON line each', tags: ['original'] } },
    )
    .post(
      '/failTask',
      async ({ query }) => {
        const task = await store.fail(Number(query.id), query.error, query.lease)
        count(task.state === 3 ? 'failed_for_good' : 'failed')
        if (task.state === 0) claimWaits.notify()
        log.info({ id: task.id, attempts: task.attempts, state: task.state, reason: query.error }, 'task failed')
        return 'success' as const
      },
      {
        query: FailQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Count a failed attempt: back to state 0, or 3 (failed) at PIXMILL_MAX_ATTEMPTS', tags: ['beyond'] },
      },
    )
    .post(
      '/retryTask',
      async ({ query }) => {
        await store.retry(Number(query.id))
        count('retried')
        claimWaits.notify()
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'A failed task (state 3) goes back to 0 with its attempts cleared', tags: ['beyond'] },
      },
    )
    .post(
      '/releaseTask',
      async ({ query }) => {
        await store.release(Number(query.id), query.lease)
        count('released')
        claimWaits.notify()
        return 'success' as const
      },
      {
        query: IdLeaseQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Give a claim back at once (a worker shutting down); no attempt is counted', tags: ['beyond'] },
      },
    )
    .post('/renewTask', async ({ query }) => taskJson(await store.renew(Number(query.id), query.lease)), {
      query: RenewQuery,
      response: { 200: TaskJson, 404: ErrorText, 409: ErrorText },
      detail: { summary: 'Extend the lease of a claim', tags: ['beyond'] },
    })
    .get(
      '/tasks',
      async ({ query }) => {
        const state = query.state === undefined ? undefined : (Number(query.state) as TaskState)
        const tasks = await store.recent({ state, limit: Number(query.limit ?? 50), before: query.before === undefined ? undefined : Number(query.before) })
        return tasks.map(taskJson)
      },
      {
        query: RecentQuery,
        response: { 200: t.Array(TaskJson) },
        detail: {
          summary: 'The newest tasks, newest first, optionally in one state (limit 1-200, default 50); `before=<id>` for the next page',
          tags: ['beyond'],
        },
      },
    )
    .get(
      '/counts',
      async () => {
        const counts = await store.countByState()
        return { 'not-started': counts[0], 'in-progress': counts[1], finished: counts[2], failed: counts[3] }
      },
      { response: { 200: CountsJson }, detail: { summary: 'How many tasks are in each state', tags: ['beyond'] } },
    )
    .post(
      '/deleteTask',
      async ({ query }) => {
        await removal.remove(Number(query.id))
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText, 503: ErrorText },
        detail: {
          summary: 'Remove a finished or failed task with both its images (409 for a task waiting or in progress)',
          description:
            'The task is out of sight at once, then its images are removed through storage, then its record. A 503 means storage ' +
            'could not remove the images now: the task stays out of sight and a later sweep (or this call again) completes the removal.',
          tags: ['beyond'],
        },
      },
    )
    .post(
      '/reserveTask',
      // The caller's `traceparent` (the master serving the upload) is kept with the task for the worker's spans.
      async ({ query, request }) =>
        String(
          await store.create({
            ready: false,
            requestId: currentRequestId(),
            keyHash: query.keyHash,
            traceParent: acceptedTraceparent(request.headers.get('traceparent')),
          }),
        ),
      {
        query: ReserveQuery,
        response: { 200: t.String({ description: 'The new task id, as text' }) },
        detail: {
          summary: 'Create a held task that no worker can claim until `/activateTask`',
          description:
            'For the master: it reserves an id, stores the image under it, then activates the task (or drops it if the upload failed). ' +
            'A held task that is never activated is removed after an hour. `keyHash`: the hash of the task key of a private result, ' +
            'answered back by `/getById` and `/getByIds`.',
          tags: ['beyond'],
        },
      },
    )
    .post(
      '/activateTask',
      async ({ query }) => {
        await store.activate(Number(query.id))
        count('created')
        claimWaits.notify()
        log.info({ id: Number(query.id) }, 'task created')
        return 'success' as const
      },
      { query: IdQuery, response: { 200: Success, 404: ErrorText }, detail: { summary: 'Make a held task claimable', tags: ['beyond'] } },
    )
    .use(consoleRoutes(store, deps.now ?? Date.now))
    .post(
      '/dropTask',
      async ({ query }) => {
        await store.drop(Number(query.id))
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Remove a held task whose upload failed (409 once it is active)', tags: ['beyond'] },
      },
    )
  return finishRole(app)
}
