// TaskStore on PostgreSQL through Bun's SQL: claims stay atomic across any number of database role instances.
import { SQL } from 'bun'
import { orAfter } from '../../shared/async.ts'
import { Conflict, DependencyUnavailable, NotFound } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { createGuard, reasonOf } from './postgres-errors.ts'
import { migrate } from './postgres-schema.ts'
import { EVENT, type EventRow, PROCESSING_COLUMNS, timeline } from './task-events.ts'
import {
  type ClaimResult,
  FIGURES_KEPT_MS,
  LEASE_RAN_OUT,
  type MinuteFigures,
  REMOVAL_LEASE_MS,
  type Task,
  type TaskState,
  type TaskStore,
  type TaskStoreOptions,
} from './task-store.ts'

/** A row as Bun returns it: BIGINT columns arrive as strings. */
interface Row {
  id: string
  state: TaskState
  attempts: number
  error: string | null
  created_at: string
  updated_at: string
  lease_until: string | null
  lease_token: string | null
  ready: boolean
  request_id: string | null
  trace_parent: string | null
  removing_until: string | null
  key_hash: string | null
  claimed_at: string | null
}

/** The per-minute figures of a minute, added up over its shards. */
const MINUTES = `
  SELECT minute, sum(created)::int AS created, sum(finished)::int AS finished, sum(failed)::int AS failed,
    sum(failed_for_good)::int AS failed_for_good, ${PROCESSING_COLUMNS.map((c) => `sum(${c})::int AS ${c}`).join(', ')}
  FROM pixmill_task_minutes WHERE minute BETWEEN $1 AND $2 GROUP BY minute ORDER BY minute`

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

function toTask(row: Row): Task {
  return {
    id: Number(row.id),
    state: row.state,
    attempts: row.attempts,
    error: row.error,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    leaseExpiresAt: row.state === 1 && row.lease_until !== null ? Number(row.lease_until) : null,
    requestId: row.request_id,
    traceParent: row.trace_parent,
    keyHash: row.key_hash,
  }
}

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
  async function row(id: number): Promise<Row | undefined> {
    const rows = await sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id = ${id} AND ready AND removing_until IS NULL`
    return rows[0]
  }
  async function anyRow(id: number): Promise<Row | undefined> {
    return (await sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id = ${id}`)[0]
  }
  let counted: { at: number; counts: Promise<Record<TaskState, number>> } | undefined

  // Each change records its event in the same statement (a data-modifying CTE), so that a change and its event commit
  // together in one round trip; the trigger of migration 5 adds the counted ones to the minute's figures.
  /** The processing time of an attempt claimed at `claimed_at` that ends at `t`, in ms (as an INTEGER column keeps it). */
  // (GREATEST and LEAST skip NULLs: a claim from before claimed_at was kept must stay without a time.)
  const processingMs = (t: number) => sql`CASE WHEN claimed_at IS NOT NULL THEN LEAST(GREATEST(${t}::bigint - claimed_at, 0), 2147483647)::int END`
  /** The CTE that records a lease expiry for each row of the CTE `expired` (id, state, attempts). */
  const expiryLogged = (t: number) => sql`logged AS (
    INSERT INTO pixmill_task_events (task_id, at, event, attempt, for_good)
    SELECT id, ${t}::bigint, ${EVENT.lease_expired}::smallint, attempts, state = 3 FROM expired)`

  const expiryListeners = new Set<(count: number) => void>()

  /**
   * Puts back the tasks whose lease ran out, before a call reads or changes tasks, so that every answer shows them back
   * at once. Rows are locked in id order and waited for (not skipped): a row another instance is expiring is seen after
   * that commits, already put back, and two instances expiring together cannot deadlock. Each expiry counts once: the
   * second instance finds the row no longer expired.
   */
  async function expireLeases(t: number): Promise<void> {
    const [expiry] = await sql<{ expired: number }[]>`
      WITH expired AS (
        UPDATE pixmill_tasks SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ${max} THEN 3 ELSE 0 END,
          error = ${LEASE_RAN_OUT}, lease_until = NULL, lease_token = NULL, updated_at = ${t}
        WHERE id IN (SELECT id FROM pixmill_tasks WHERE state = 1 AND lease_until <= ${t} ORDER BY id FOR UPDATE)
        RETURNING id, state, attempts
      ), ${expiryLogged(t)}
      SELECT count(*)::int AS expired FROM expired`
    const expired = expiry?.expired ?? 0
    if (expired > 0) for (const listener of expiryListeners) listener(expired)
  }

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

  /**
   * Why a guarded update of a task in progress touched no row: it is unknown, not in progress, or held by another
   * claim. Read after the update failed, so in a race the answer describes the state that won.
   */
  async function refusal(id: number, action: string, leaseToken: string | undefined): Promise<never> {
    const current = await row(id)
    if (!current) throw new NotFound(`No task with id ${id}.`)
    if (current.state !== 1) {
      const why = current.state === 2 ? 'is already finished' : current.state === 3 ? 'has failed for good' : 'is not in progress'
      throw new Conflict(`Cannot ${action} task ${id}: it ${why}.`)
    }
    if (leaseToken !== undefined && leaseToken !== current.lease_token) {
      throw new Conflict(`Cannot ${action} task ${id}: the lease token does not match; the lease ran out and the task was claimed again.`)
    }
    throw new Conflict(`Cannot ${action} task ${id}: it changed while the call ran; try again.`)
  }

  /** The task if `rows` holds the updated row, else the reason it was refused. */
  async function updated(rows: Row[], id: number, action: string, leaseToken: string | undefined): Promise<Task> {
    return rows[0] ? toTask(rows[0]) : refusal(id, action, leaseToken)
  }

  // Every token-checked change is ONE conditional UPDATE: the state and token are checked on the locked row, so
  // two instances racing on one task cannot both succeed (a check-then-write would need SELECT ... FOR UPDATE).
  const inProgress = (id: number, token: string | undefined) =>
    sql`id = ${id} AND state = 1 AND (${token ?? null}::text IS NULL OR lease_token = ${token ?? null})`

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
        const found = await anyRow(id)
        if (found?.ready) throw new Conflict(`Cannot drop task ${id}: it is not held for an upload.`)
        throw new NotFound(`No task with id ${id}.`)
      }),
    claim: () =>
      guardedWrite(async (): Promise<ClaimResult> => {
        const t = now()
        // Expired leases are put back (or failed for good) and stale held tasks swept in one statement. SKIP LOCKED:
        // a row another instance is already expiring (or finishing) is left to it, so each expiry counts once and
        // no claimer waits on another. The sweep leaves alone a row the expiry touches (one change per row).
        const [expiry] = await sql<{ expired: number }[]>`
          WITH expired AS (
            UPDATE pixmill_tasks SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ${max} THEN 3 ELSE 0 END,
              error = ${LEASE_RAN_OUT}, lease_until = NULL, lease_token = NULL, updated_at = ${t}
            WHERE id IN (SELECT id FROM pixmill_tasks WHERE state = 1 AND lease_until <= ${t} FOR UPDATE SKIP LOCKED)
            RETURNING id, state, attempts
          ), ${expiryLogged(t)}
          SELECT count(*)::int AS expired FROM expired`
        // A separate statement so that it sees the tasks just put back. SKIP LOCKED: concurrent claimers each take
        // a different row instead of queueing on the oldest one and then finding it taken.
        const leaseToken = crypto.randomUUID()
        const [claimed] = await sql<Row[]>`
          WITH claimed AS (
            UPDATE pixmill_tasks SET state = 1, lease_until = ${t + leaseMs}, lease_token = ${leaseToken}, updated_at = ${t}, claimed_at = ${t}
            WHERE id = (SELECT id FROM pixmill_tasks WHERE state = 0 AND ready ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING *
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event, attempt) SELECT id, ${t}::bigint, ${EVENT.claimed}::smallint, attempts + 1 FROM claimed
          )
          SELECT * FROM claimed`
        const expired = expiry?.expired ?? 0
        if (expired > 0) for (const listener of expiryListeners) listener(expired)
        return { claim: claimed ? { task: toTask(claimed), leaseToken } : undefined }
      }),
    claimable: () => fresh(async () => (await sql`SELECT 1 AS one FROM pixmill_tasks WHERE state = 0 AND ready LIMIT 1`).length > 0),
    renew: (id, leaseToken) =>
      fresh(async (t) => {
        const rows = await sql<Row[]>`UPDATE pixmill_tasks SET lease_until = ${t + leaseMs}, updated_at = ${t} WHERE ${inProgress(id, leaseToken)} RETURNING *`
        return updated(rows, id, 'renew the lease of', leaseToken)
      }),
    finish: (id, leaseToken) =>
      freshWrite(async (t) => {
        const rows = await sql<Row[]>`
          WITH finished AS (
            UPDATE pixmill_tasks SET state = 2, lease_until = NULL, lease_token = NULL, updated_at = ${t}
            WHERE ${inProgress(id, leaseToken)} RETURNING *
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event, attempt, ms)
            SELECT id, ${t}::bigint, ${EVENT.finished}::smallint, attempts + 1, ${processingMs(t)} FROM finished
          )
          SELECT * FROM finished`
        return updated(rows, id, 'finish', leaseToken)
      }),
    fail: (id, error, leaseToken) =>
      freshWrite(async (t) => {
        const rows = await sql<Row[]>`
          WITH failed AS (
            UPDATE pixmill_tasks SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ${max} THEN 3 ELSE 0 END,
              error = ${error ?? 'no reason given'}, lease_until = NULL, lease_token = NULL, updated_at = ${t}
            WHERE ${inProgress(id, leaseToken)} RETURNING *
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event, attempt, error, for_good)
            SELECT id, ${t}::bigint, ${EVENT.failed}::smallint, attempts, error, state = 3 FROM failed
          )
          SELECT * FROM failed`
        return updated(rows, id, 'fail', leaseToken)
      }),
    release: (id, leaseToken) =>
      freshWrite(async (t) => {
        const rows = await sql<Row[]>`
          WITH released AS (
            UPDATE pixmill_tasks SET state = 0, lease_until = NULL, lease_token = NULL, updated_at = ${t}
            WHERE ${inProgress(id, leaseToken)} RETURNING *
          ), logged AS (
            INSERT INTO pixmill_task_events (task_id, at, event, attempt) SELECT id, ${t}::bigint, ${EVENT.released}::smallint, attempts + 1 FROM released
          )
          SELECT * FROM released`
        return updated(rows, id, 'release', leaseToken)
      }),
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
              CASE WHEN ${state}::int = 2 AND state = 1 THEN ${processingMs(t)} END
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
    markForRemoval: ({ endedBefore, heldBefore, limit }) =>
      freshWrite(async (t) => {
        // Three index scans, each bounded; SKIP LOCKED: instances sweeping at once take different tasks.
        const rows = await sql<{ id: string }[]>`
          WITH ended AS (
            SELECT id FROM pixmill_tasks WHERE state >= 2 AND ready AND removing_until IS NULL AND updated_at <= ${endedBefore ?? null}
            ORDER BY updated_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
          ), held AS (
            SELECT id FROM pixmill_tasks WHERE NOT ready AND removing_until IS NULL AND created_at <= ${heldBefore}
            LIMIT ${limit} FOR UPDATE SKIP LOCKED
          ), stalled AS (
            SELECT id FROM pixmill_tasks WHERE removing_until <= ${t} LIMIT ${limit} FOR UPDATE SKIP LOCKED
          )
          UPDATE pixmill_tasks SET removing_until = ${t + REMOVAL_LEASE_MS}
          WHERE id IN (SELECT id FROM ended UNION SELECT id FROM held UNION SELECT id FROM stalled)
          RETURNING id`
        return rows.map((r) => Number(r.id)).sort((a, b) => a - b)
      }),
    markOneForRemoval: (id) =>
      freshWrite(async (t) => {
        const rows = await sql`
          UPDATE pixmill_tasks SET removing_until = ${t + REMOVAL_LEASE_MS}
          WHERE id = ${id} AND ready AND (state >= 2 OR removing_until IS NOT NULL) RETURNING id`
        if (rows.length > 0) return
        const found = await anyRow(id)
        if (!found?.ready) throw new NotFound(`No task with id ${id}.`)
        throw new Conflict(`Cannot delete task ${id}: it is ${found.state === 0 ? 'waiting' : 'in progress'}; only a finished or failed task can be deleted.`)
      }),
    releaseRemoval: (ids) =>
      guardedWrite(async () => {
        const t = now()
        if (ids.length > 0) await sql`UPDATE pixmill_tasks SET removing_until = ${t} WHERE id IN ${sql(ids as number[])} AND removing_until > ${t}`
      }),
    removeMarked: (ids) =>
      guardedWrite(async () => {
        if (ids.length === 0) return 0
        const rows = await sql`
          WITH gone AS (DELETE FROM pixmill_tasks WHERE id IN ${sql(ids as number[])} AND removing_until IS NOT NULL RETURNING id),
          timelines AS (DELETE FROM pixmill_task_events WHERE task_id IN (SELECT id FROM gone))
          SELECT id FROM gone`
        return rows.length
      }),
    events: (id) =>
      guarded(async () => {
        const t = now()
        const read = () =>
          sql<(EventRow & { state: TaskState; lease_until: string | null; created_at: string; seq: string | null })[]>`
            SELECT task.state, task.lease_until, task.created_at, e.seq, e.at, e.event, e.attempt, e.error, e.for_good, e.ms
            FROM pixmill_tasks AS task LEFT JOIN pixmill_task_events AS e ON e.task_id = task.id
            WHERE task.id = ${id} AND task.ready AND task.removing_until IS NULL ORDER BY e.seq`
        let rows = await read()
        // As get(): a task in progress past its lease shows the expiry first.
        if (rows[0] && rows[0].state === 1 && rows[0].lease_until !== null && Number(rows[0].lease_until) <= t) {
          await expireLeases(t)
          rows = await read()
        }
        if (!rows[0]) return undefined
        return timeline(
          rows.filter((r) => r.seq !== null),
          Number(rows[0].created_at),
        )
      }),
    figures: ({ from, to }) =>
      guarded(async () => {
        const [minutes, samples] = await Promise.all([
          sql.unsafe<({ minute: string } & Record<string, number>)[]>(MINUTES, [from, to]),
          sql<{ minute: string; at: string; waiting: number; in_progress: number }[]>`
            SELECT * FROM pixmill_queue_samples WHERE minute BETWEEN ${from} AND ${to} ORDER BY minute`,
        ])
        return {
          minutes: minutes.map(
            (row): MinuteFigures => ({
              minute: Number(row.minute),
              created: row.created!,
              finished: row.finished!,
              failed: row.failed!,
              failedForGood: row.failed_for_good!,
              processing: PROCESSING_COLUMNS.map((c) => row[c]!),
            }),
          ),
          samples: samples.map((row) => ({ minute: Number(row.minute), at: Number(row.at), waiting: row.waiting, inProgress: row.in_progress })),
        }
      }),
    async sampleQueue() {
      // The shared count (countsCacheMs) serves this too: a sample a second old is as good.
      const counts = await store.countByState()
      await guarded(async () => {
        const t = now()
        const cutoff = t - FIGURES_KEPT_MS
        // Instances sharing the database sample the same minute: the latest sample stays.
        await sql`
          WITH old_minutes AS (DELETE FROM pixmill_task_minutes WHERE minute < ${cutoff}),
          old_samples AS (DELETE FROM pixmill_queue_samples WHERE minute < ${cutoff})
          INSERT INTO pixmill_queue_samples AS s (minute, at, waiting, in_progress) VALUES (${t - (t % 60_000)}, ${t}, ${counts[0]}, ${counts[1]})
          ON CONFLICT (minute) DO UPDATE SET at = EXCLUDED.at, waiting = EXCLUDED.waiting, in_progress = EXCLUDED.in_progress WHERE EXCLUDED.at >= s.at`
      })
    },
    onLeasesExpired(listener) {
      expiryListeners.add(listener)
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
