// TaskStore on PostgreSQL through Bun's SQL: claims stay atomic across any number of database role instances.
// Its parts by job: postgres-leases.ts (lease expiry and claims), postgres-removal.ts, postgres-figures.ts.
import { SQL } from 'bun'
import { orAfter } from '../../shared/async.ts'
import { Conflict, DependencyUnavailable, NotFound } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { createGuard, reasonOf } from './postgres-errors.ts'
import { timelineAndFigures } from './postgres-figures.ts'
import { claimChanges, leaseExpiry, processingMs } from './postgres-leases.ts'
import { removalStatements } from './postgres-removal.ts'
import { anyRow, type Row, type StoreContext, toTask, visibleRow } from './postgres-rows.ts'
import { migrate } from './postgres-schema.ts'
import { EVENT } from './task-events.ts'
import type { TaskState, TaskStore, TaskStoreOptions } from './task-store.ts'

export interface PostgresTaskStoreOptions extends TaskStoreOptions {
  /** Connections in this instance's pool. Default 10. */
  readonly maxConnections?: number
  /** Seconds to wait for a connection to open before the call fails with 503. Default 5. */
  readonly connectTimeoutSeconds?: number
  /** An operation that has not settled by then fails with 503 (a hung server or network). Default 10000. */
  readonly operationTimeoutMs?: number
  /**
   * countByState() reads every visible row (PostgreSQL keeps no count), so one answer serves every call for this long:
   * a metrics scrape, the board and /counts together count once. Default 2000 ms; 0 counts on every call.
   */
  readonly countsCacheMs?: number
  /** Gets one line when PostgreSQL becomes unavailable and one when it is back. Default: silent. */
  readonly log?: Logger
}

/** list() reads this many rows per query, so listing a large table neither loads it whole nor holds a cursor open. */
const LIST_PAGE = 500
/** healthy() gives up after this long: a hung server is as unhealthy as a stopped one. */
const HEALTH_TIMEOUT_MS = 2000

/** `postgres://user:secret@host/db` without the secret, for logs. */
export function redactPostgresUrl(url: string): string {
  const parsed = new URL(url)
  if (parsed.password) parsed.password = '***'
  return parsed.toString()
}

/**
 * Opens a pool on `url` (`postgres://user:pass@host:port/db`) and creates or migrates the schema. Rejects with
 * DependencyUnavailable when PostgreSQL cannot be reached. Every change is a single statement (or a transaction)
 * committed before the call returns.
 */
export async function openPostgresTaskStore(url: string, options: PostgresTaskStoreOptions): Promise<TaskStore> {
  const sql = new SQL(url, {
    max: options.maxConnections ?? 10,
    connectionTimeout: options.connectTimeoutSeconds ?? 5,
    idleTimeout: 60,
  })
  const timeoutMs = options.operationTimeoutMs ?? 10_000
  try {
    // Not the store's guard: a failed start is the caller's to report (and retry), with the driver's reason.
    await createGuard({ timeoutMs })(() => migrate(sql))
  } catch (error) {
    await sql.close({ timeout: 0 }).catch(() => {})
    if (!(error instanceof DependencyUnavailable)) throw error
    throw Object.assign(new DependencyUnavailable(`Cannot open the task database at ${redactPostgresUrl(url)}: ${reasonOf(error.cause ?? error)}`), {
      cause: error.cause,
    })
  }
  const guarded = createGuard({ timeoutMs, log: options.log })
  const now = options.now ?? Date.now
  const leaseMs = options.leaseSeconds * 1000
  const max = options.maxAttempts
  const countsCacheMs = options.countsCacheMs ?? 2000

  /** A visible task: one held for its upload or being removed is seen by no read. */
  const row = (id: number) => visibleRow(sql, id)
  let counted: { at: number; counts: Promise<Record<TaskState, number>> } | undefined
  const leases = leaseExpiry(sql, max)
  const { expireLeases } = leases

  /** Runs `work` once the leases that ran out by now are put back. */
  const fresh = <T>(work: (t: number) => Promise<T>) =>
    guarded(async () => {
      const t = now()
      await expireLeases(t)
      return work(t)
    })
  // A write forgets the cached counts, so that this instance's own reads after its writes are never stale.
  const forgetCounts = () => (counted = undefined)
  const guardedWrite = <T>(work: () => Promise<T>) => guarded(work).finally(forgetCounts)
  const freshWrite = <T>(work: (t: number) => Promise<T>) => fresh(work).finally(forgetCounts)
  const context: StoreContext = { sql, now, guarded, fresh, guardedWrite, freshWrite }

  // Each change records its event in the same statement (a data-modifying CTE), so that a change and its event commit
  // together in one round trip; the trigger of migration 5 adds the counted ones to the minute's figures.
  const store: TaskStore = {
    create: (opts) =>
      guardedWrite(async () => {
        const t = now()
        // One statement: the counter row stays locked until the insert commits, so ids have no gaps or repeats.
        // A held task becomes visible, and so created, when it is activated.
        const [created] = await sql<{ id: string }[]>`
          WITH next AS (UPDATE pixmill_counters SET next = next + 1 WHERE name = 'tasks' RETURNING next - 1 AS id),
          made AS (
            INSERT INTO pixmill_tasks (id, created_at, updated_at, ready, request_id, key_hash, trace_parent)
            SELECT id, ${t}, ${t}, ${opts?.ready ?? true}, ${opts?.requestId ?? null}, ${opts?.keyHash ?? null}, ${opts?.traceParent ?? null} FROM next
            RETURNING id, ready
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event) SELECT id, ${t}::bigint, ${EVENT.created}::smallint FROM made WHERE ready
          )
          SELECT id FROM made`
        return Number(created!.id)
      }),
    get: (id) =>
      guarded(async () => {
        const t = now()
        let found = await row(id)
        // Only a task in progress past its lease needs the expiry first: most reads cost one query.
        if (found && found.state === 1 && found.lease_until !== null && Number(found.lease_until) <= t) {
          await expireLeases(t)
          found = await row(id)
        }
        return found ? toTask(found) : undefined
      }),
    getMany: (ids) =>
      fresh(async () => {
        if (ids.length === 0) return []
        const rows = await sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id IN ${sql(ids as number[])} AND ready AND removing_until IS NULL ORDER BY id`
        return rows.map(toTask)
      }),
    activate: (id) =>
      guardedWrite(async () => {
        const t = now()
        // `was` reads the row as it was before (locked, so that two activations record one `created`).
        const rows = await sql`
          WITH was AS (SELECT id, ready FROM pixmill_tasks WHERE id = ${id} AND removing_until IS NULL FOR UPDATE),
          activated AS (UPDATE pixmill_tasks AS task SET ready = TRUE, updated_at = ${t} FROM was WHERE task.id = was.id RETURNING task.id),
          logged AS (INSERT INTO pixmill_task_events (task_id, at, event) SELECT id, ${t}::bigint, ${EVENT.created}::smallint FROM was WHERE NOT ready)
          SELECT id FROM activated`
        if (rows.length === 0) throw new NotFound(`No task with id ${id}.`)
      }),
    drop: (id) =>
      guardedWrite(async () => {
        // Removed by the next sweep, with any image that reached storage after all (an answer lost on the way).
        const rows = await sql`UPDATE pixmill_tasks SET removing_until = ${now()} WHERE id = ${id} AND NOT ready AND removing_until IS NULL RETURNING id`
        if (rows.length > 0) return
        const found = await anyRow(sql, id)
        if (found?.ready) throw new Conflict(`Cannot drop task ${id}: it is not held for an upload.`)
        throw new NotFound(`No task with id ${id}.`)
      }),
    ...claimChanges(context, leases, { leaseMs, max }),
    retry: (id) =>
      freshWrite(async (t) => {
        const rows = await sql<Row[]>`
          WITH retried AS (
            UPDATE pixmill_tasks SET state = 0, attempts = 0, error = NULL, updated_at = ${t} WHERE id = ${id} AND state = 3 AND ready AND removing_until IS NULL RETURNING *
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event) SELECT id, ${t}::bigint, ${EVENT.retried}::smallint FROM retried
          )
          SELECT * FROM retried`
        if (rows[0]) return toTask(rows[0])
        const current = await row(id)
        if (!current) throw new NotFound(`No task with id ${id}.`)
        throw new Conflict(`Cannot retry task ${id}: only a failed task (state 3) can be retried; it is in state ${current.state}.`)
      }),
    setState: (id, state) =>
      freshWrite(async (t) => {
        // The original /setById: the timeline shows what the change amounts to, as task-events.ts' setStateEvent says.
        const rows = await sql<Row[]>`
          WITH was AS (SELECT id, state, attempts, claimed_at FROM pixmill_tasks WHERE id = ${id} AND ready AND removing_until IS NULL FOR UPDATE),
          changed AS (
            UPDATE pixmill_tasks AS task SET state = ${state}, lease_until = ${state === 1 ? t + leaseMs : null}, lease_token = NULL, updated_at = ${t},
              claimed_at = CASE WHEN ${state}::int = 1 THEN ${t}::bigint ELSE task.claimed_at END
            FROM was WHERE task.id = was.id RETURNING task.*
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event, attempt, ms)
            SELECT id, ${t}::bigint,
              CASE WHEN ${state}::int = 1 THEN ${EVENT.claimed} WHEN ${state}::int = 2 THEN ${EVENT.finished} WHEN state = 1 THEN ${EVENT.released} ELSE ${EVENT.retried} END,
              CASE WHEN ${state}::int = 1 OR state = 1 THEN attempts + 1 END,
              CASE WHEN ${state}::int = 2 AND state = 1 THEN ${processingMs(sql, t)} END
            FROM was WHERE state <> ${state}::int
          )
          SELECT * FROM changed`
        if (!rows[0]) throw new NotFound(`No task with id ${id}.`)
        return toTask(rows[0])
      }),
    async *list() {
      // Keyset pages: each page is its own short query, so a slow reader holds no connection between pages.
      await guarded(() => expireLeases(now()))
      for (let after = -1; ; ) {
        const rows = await guarded(
          () => sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id > ${after} AND ready AND removing_until IS NULL ORDER BY id LIMIT ${LIST_PAGE}`,
        )
        for (const found of rows) yield toTask(found)
        if (rows.length < LIST_PAGE) return
        after = Number(rows[rows.length - 1]!.id)
      }
    },
    recent: ({ state, limit, before }) =>
      fresh(async () => {
        const below = before ?? Number.MAX_SAFE_INTEGER
        const rows =
          state === undefined
            ? await sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id < ${below} AND ready AND removing_until IS NULL ORDER BY id DESC LIMIT ${limit}`
            : await sql<
                Row[]
              >`SELECT * FROM pixmill_tasks WHERE state = ${state} AND id < ${below} AND ready AND removing_until IS NULL ORDER BY id DESC LIMIT ${limit}`
        return rows.map(toTask)
      }),
    countByState() {
      if (counted && now() - counted.at < countsCacheMs) return counted.counts
      const counts = fresh(async () => {
        const found: Record<TaskState, number> = { 0: 0, 1: 0, 2: 0, 3: 0 }
        const rows = await sql<{ state: TaskState; n: number }[]>`
          SELECT state, count(*)::int AS n FROM pixmill_tasks WHERE ready AND removing_until IS NULL GROUP BY state`
        for (const { state, n } of rows) found[state] = n
        return found
      })
      counted = { at: now(), counts }
      counts.catch(() => (counted = undefined))
      return counts
    },
    ...removalStatements(context),
    ...timelineAndFigures(context, leases, () => store.countByState()),
    onLeasesExpired(listener) {
      leases.onLeasesExpired(listener)
    },
    async healthy() {
      // A second try after a quick failure: after PostgreSQL restarts, the first query on the old pool can still
      // fail with the old connection's error. No second try after no answer: that is a hung server.
      for (let attempt = 0; attempt < 2; attempt++) {
        const ping = (async () => (await sql<{ one: number }[]>`SELECT 1 AS one`)[0]?.one === 1)().catch(() => false)
        const answer = await orAfter(ping, HEALTH_TIMEOUT_MS, 'late' as const)
        if (answer !== false) return answer === true
      }
      return false
    },
    async close() {
      await sql.close({ timeout: 5 })
    },
  }
  return store
}
