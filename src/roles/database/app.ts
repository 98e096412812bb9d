// The database role: task records, atomic claims and leases.
import { t } from 'elysia'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import type { Clock } from '../../shared/clock.ts'
import type { Logger } from '../../shared/logger.ts'
import { Gauge, type Registry } from '../../shared/prom.ts'
import { currentRequestId } from '../../shared/request-context.ts'
import { acceptedTraceparent } from '../../shared/trace-context.ts'
import { ErrorText, IdQuery, Success } from '../../shared/wire/params.ts'
import { type ClaimWaits, createClaimWaits } from './claim-waits.ts'
import { consoleRoutes } from './console-routes.ts'
import { lifecycleRoutes } from './lifecycle-routes.ts'
import { CountsJson, RecentQuery, ReserveQuery, TaskJson, taskJson } from './model.ts'
import type { Removal } from './removal.ts'
import type { ReportsSharedFigures } from './shared-figures.ts'
import { taskMetrics } from './task-metrics.ts'
import type { TaskState, TaskStore } from './task-store.ts'

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

/** Claim waits over `store`, their timers on `clock` (default systemClock): a claim given back when its waiter went away. */
export function createDatabaseClaimWaits(store: TaskStore, clock?: Clock): ClaimWaits {
  return createClaimWaits({
    clock,
    claim: () => store.claim(),
    claimable: () => store.claimable(),
    release: async ({ task, leaseToken }) => void (await store.release(task.id, leaseToken)),
  })
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
    // Mounted here, not after the others: the routes' order is the order of the OpenAPI document.
    .use(lifecycleRoutes({ store, claimWaits, count, log }))
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
