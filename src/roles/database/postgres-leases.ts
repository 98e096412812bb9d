// Leases in the PostgreSQL task store: tasks whose lease ran out are put back, and a claim's changes (claim, renew,
// finish, fail, release) are each one conditional UPDATE that records its event.
import type { SQL } from 'bun'
import { Conflict, NotFound } from '../../shared/errors.ts'
import { type Row, type StoreContext, toTask, visibleRow } from './postgres-rows.ts'
import { EVENT } from './task-events.ts'
import { type ClaimResult, LEASE_RAN_OUT, type Task, type TaskStore } from './task-store.ts'

// Each change records its event in the same statement (a data-modifying CTE), so that a change and its event commit
// together in one round trip; the trigger of migration 5 adds the counted ones to the minute's figures.
/** The processing time of an attempt claimed at `claimed_at` that ends at `t`, in ms (as an INTEGER column keeps it). */
// (GREATEST and LEAST skip NULLs: a claim from before claimed_at was kept must stay without a time.)
export const processingMs = (sql: SQL, t: number) =>
  sql`CASE WHEN claimed_at IS NOT NULL THEN LEAST(GREATEST(${t}::bigint - claimed_at, 0), 2147483647)::int END`

/** Putting back the tasks whose lease ran out (with `max` attempts a task fails for good), and who hears of it. */
export function leaseExpiry(sql: SQL, max: number) {
  /** The CTE that records a lease expiry for each row of the CTE `expired` (id, state, attempts). */
  const expiryLogged = (t: number) => sql`logged AS (
    INSERT INTO pixmill_task_events (task_id, at, event, attempt, for_good)
    SELECT id, ${t}::bigint, ${EVENT.lease_expired}::smallint, attempts, state = 3 FROM expired)`

  const expiryListeners = new Set<(count: number) => void>()
  /** Tells every listener that `expired` leases ran out (none when 0). */
  const announce = (expired: number) => {
    if (expired > 0) for (const listener of expiryListeners) listener(expired)
  }

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
    announce(expiry?.expired ?? 0)
  }

  return {
    expiryLogged,
    expireLeases,
    announce,
    onLeasesExpired(listener: (count: number) => void) {
      expiryListeners.add(listener)
    },
  }
}

export type LeaseExpiry = ReturnType<typeof leaseExpiry>

/** The store's operations on claims; `leaseMs` is a lease's length, `max` the attempts before a task fails for good. */
export function claimChanges(
  { sql, now, fresh, guardedWrite, freshWrite }: StoreContext,
  leases: LeaseExpiry,
  { leaseMs, max }: { leaseMs: number; max: number },
): Pick<TaskStore, 'claim' | 'claimable' | 'renew' | 'finish' | 'fail' | 'release'> {
  /**
   * Why a guarded update of a task in progress touched no row: it is unknown, not in progress, or held by another
   * claim. Read after the update failed, so in a race the answer describes the state that won.
   */
  async function refusal(id: number, action: string, leaseToken: string | undefined): Promise<never> {
    const current = await visibleRow(sql, id)
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

  return {
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
        ), ${leases.expiryLogged(t)}
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
        leases.announce(expiry?.expired ?? 0)
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
          SELECT id, ${t}::bigint, ${EVENT.finished}::smallint, attempts + 1, ${processingMs(sql, t)} FROM finished
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
  }
}
