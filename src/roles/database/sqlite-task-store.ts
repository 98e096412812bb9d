// TaskStore on bun:sqlite (WAL): every acknowledged change is committed before the call returns.
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Conflict, NotFound } from '../../shared/errors.ts'
import { migrateSqlite, VISIBLE } from './sqlite-schema.ts'
import { EVENT, type EventRow, PROCESSING_COLUMNS, setStateEvent, timeline } from './task-events.ts'
import {
  type ClaimResult,
  FIGURES_KEPT_MS,
  LEASE_RAN_OUT,
  type MinuteFigures,
  type QueueSample,
  REMOVAL_LEASE_MS,
  type Task,
  type TaskState,
  type TaskStore,
  type TaskStoreOptions,
} from './task-store.ts'

interface Row {
  id: number
  state: TaskState
  attempts: number
  error: string | null
  created_at: number
  updated_at: number
  lease_until: number | null
  lease_token: string | null
  ready: number
  request_id: string | null
  trace_parent: string | null
  removing_until: number | null
  key_hash: string | null
  claimed_at: number | null
}

type MinuteRow = { minute: number; created: number; finished: number; failed: number; failed_for_good: number } & Record<string, number>

/** An event's columns after the task's id and the time: attempt, error, for good (0/1), processing ms. */
type EventDetails = [attempt?: number | null, error?: string | null, forGood?: number | null, ms?: number | null]

function toTask(row: Row): Task {
  return {
    id: row.id,
    state: row.state,
    attempts: row.attempts,
    error: row.error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    leaseExpiresAt: row.state === 1 ? row.lease_until : null,
    requestId: row.request_id,
    traceParent: row.trace_parent,
    keyHash: row.key_hash,
  }
}

/** Opens (creating if needed) `<dir>/tasks.sqlite`. */
export function openSqliteTaskStore(dir: string, options: TaskStoreOptions): TaskStore {
  mkdirSync(dir, { recursive: true })
  const db = new Database(join(dir, 'tasks.sqlite'), { create: true, strict: true })
  // WAL with synchronous=NORMAL: a committed change survives a crash of the process (kill -9).
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;')
  migrateSqlite(db)
  // One process keeps this file: removals begun before a restart were interrupted, and are taken up by the first sweep.
  db.prepare('UPDATE tasks SET removing_until = ?1 WHERE removing_until > ?1').run((options.now ?? Date.now)())
  const now = options.now ?? Date.now
  const leaseMs = options.leaseSeconds * 1000
  const max = options.maxAttempts

  const q = {
    nextId: db.prepare<{ next: number }, []>(`UPDATE sequence SET next = next + 1 WHERE name = 'tasks' RETURNING next - 1 AS next`),
    insert: db.prepare<Row, [number, number, number, string | null, string | null, string | null]>(
      'INSERT INTO tasks (id, created_at, updated_at, ready, request_id, key_hash, trace_parent) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6) RETURNING *',
    ),
    get: db.prepare<Row, [number]>(`SELECT * FROM tasks WHERE id = ? AND ${VISIBLE}`),
    getAny: db.prepare<Row, [number]>('SELECT * FROM tasks WHERE id = ?'),
    activate: db.prepare<Row, [number, number]>('UPDATE tasks SET ready = 1, updated_at = ?2 WHERE id = ?1 RETURNING *'),
    // A dropped task is removed by the next sweep, with any image that reached storage after all (an answer lost).
    drop: db.prepare<Row, [number, number]>('UPDATE tasks SET removing_until = ?2 WHERE id = ?1 AND ready = 0 RETURNING *'),
    markBatch: db.prepare<{ id: number }, [number, number | null, number, number, number]>(
      `UPDATE tasks SET removing_until = ?1 + ?5 WHERE id IN (
         SELECT id FROM tasks INDEXED BY tasks_ended WHERE state >= 2 AND ${VISIBLE} AND updated_at <= ?2
         UNION SELECT id FROM tasks INDEXED BY tasks_held WHERE ready = 0 AND removing_until IS NULL AND created_at <= ?3
         UNION SELECT id FROM tasks INDEXED BY tasks_removing WHERE removing_until <= ?1
         ORDER BY id LIMIT ?4)
       RETURNING id`,
    ),
    markOne: db.prepare<unknown, [number, number]>('UPDATE tasks SET removing_until = ?2 WHERE id = ?1'),
    remove: db.prepare<unknown, [number]>('DELETE FROM tasks WHERE id = ? AND removing_until IS NOT NULL'),
    releaseRemoval: db.prepare<unknown, [number, number]>('UPDATE tasks SET removing_until = ?2 WHERE id = ?1 AND removing_until > ?2'),
    // INDEXED BY: without statistics the planner takes tasks_by_state and reads every task in progress on each claim
    // (claims fell from 4,900/s to 1,200/s as 12,000 tasks were claimed); the partial index reads only expired leases.
    expire: db.prepare<Pick<Row, 'id' | 'state' | 'attempts'>, [number, number, string]>(
      `UPDATE tasks INDEXED BY tasks_leased SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ?2 THEN 3 ELSE 0 END,
         error = ?3, lease_until = NULL, lease_token = NULL, updated_at = ?1
       WHERE state = 1 AND lease_until <= ?1 RETURNING id, state, attempts`,
    ),
    anyClaimable: db.prepare<{ one: number }, []>('SELECT 1 AS one FROM tasks INDEXED BY tasks_claimable WHERE state = 0 AND ready = 1 LIMIT 1'),
    anyExpired: db.prepare<{ one: number }, [number]>('SELECT 1 AS one FROM tasks INDEXED BY tasks_leased WHERE state = 1 AND lease_until <= ? LIMIT 1'),
    claim: db.prepare<Row, [number, number, string]>(
      `UPDATE tasks SET state = 1, lease_until = ?2, lease_token = ?3, updated_at = ?1, claimed_at = ?1
       WHERE id = (SELECT id FROM tasks WHERE state = 0 AND ready = 1 ORDER BY id LIMIT 1) RETURNING *`,
    ),
    renew: db.prepare<Row, [number, number, number]>('UPDATE tasks SET lease_until = ?2, updated_at = ?3 WHERE id = ?1 RETURNING *'),
    finish: db.prepare<Row, [number, number]>(
      'UPDATE tasks SET state = 2, lease_until = NULL, lease_token = NULL, updated_at = ?2 WHERE id = ?1 RETURNING *',
    ),
    fail: db.prepare<Row, [number, number, number, string | null]>(
      `UPDATE tasks SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ?3 THEN 3 ELSE 0 END,
         error = ?4, lease_until = NULL, lease_token = NULL, updated_at = ?2 WHERE id = ?1 RETURNING *`,
    ),
    release: db.prepare<Row, [number, number]>(
      'UPDATE tasks SET state = 0, lease_until = NULL, lease_token = NULL, updated_at = ?2 WHERE id = ?1 RETURNING *',
    ),
    retry: db.prepare<Row, [number, number]>(
      'UPDATE tasks SET state = 0, attempts = 0, error = NULL, updated_at = ?2 WHERE id = ?1 RETURNING *',
    ),
    setState: db.prepare<Row, [number, number, number | null, number]>(
      `UPDATE tasks SET state = ?2, lease_until = ?3, lease_token = NULL, updated_at = ?4, claimed_at = CASE WHEN ?2 = 1 THEN ?4 ELSE claimed_at END
       WHERE id = ?1 RETURNING *`,
    ),
    all: db.prepare<Row, []>(`SELECT * FROM tasks WHERE ${VISIBLE} ORDER BY id`),
    recent: db.prepare<Row, [number, number]>(`SELECT * FROM tasks WHERE id < ? AND ${VISIBLE} ORDER BY id DESC LIMIT ?`),
    recentInState: db.prepare<Row, [number, number, number]>(`SELECT * FROM tasks WHERE state = ? AND id < ? AND ${VISIBLE} ORDER BY id DESC LIMIT ?`),
    // The per-minute figures follow from this insert by a trigger (sqlite-schema.ts).
    event: db.prepare<unknown, [number, number, number, number | null, string | null, number | null, number | null]>(
      'INSERT INTO task_events (task_id, at, event, attempt, error, for_good, ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)',
    ),
    events: db.prepare<EventRow, [number]>('SELECT at, event, attempt, error, for_good, ms FROM task_events WHERE task_id = ? ORDER BY id'),
    minutes: db.prepare<MinuteRow, [number, number]>('SELECT * FROM task_minutes WHERE minute BETWEEN ? AND ? ORDER BY minute'),
    samples: db.prepare<{ minute: number; at: number; waiting: number; in_progress: number }, [number, number]>(
      'SELECT * FROM queue_samples WHERE minute BETWEEN ? AND ? ORDER BY minute',
    ),
    sample: db.prepare<unknown, [number, number, number, number]>(
      `INSERT INTO queue_samples (minute, at, waiting, in_progress) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (minute) DO UPDATE SET at = excluded.at, waiting = excluded.waiting, in_progress = excluded.in_progress WHERE excluded.at >= at`,
    ),
    pruneMinutes: db.prepare<unknown, [number]>('DELETE FROM task_minutes WHERE minute < ?'),
    pruneSamples: db.prepare<unknown, [number]>('DELETE FROM queue_samples WHERE minute < ?'),
    // Kept by triggers (sqlite-schema.ts): four rows, however many tasks there are.
    counts: db.prepare<{ state: TaskState; n: number }, []>('SELECT state, n FROM task_counts'),
    ping: db.prepare<{ one: number }, []>('SELECT 1 AS one'),
  }

  /**
   * Rows that get() read, until a change through this store touches them: this process is the only writer of its file
   * (and every change below forgets the rows it may touch), so a poll of a task costs a Map lookup, not a query.
   */
  const rows = new Map<number, Row>()
  const ROWS_KEPT = 50_000
  const forget = (id: number) => void rows.delete(id)
  const remember = (row: Row) => {
    rows.delete(row.id)
    rows.set(row.id, row)
    if (rows.size > ROWS_KEPT) rows.delete(rows.keys().next().value!)
  }

  function existing(id: number): Row {
    const row = q.get.get(id)
    if (!row) throw new NotFound(`No task with id ${id}.`)
    return row
  }

  /** The row of a task in progress whose claim `leaseToken` (when given) still holds. */
  function inProgress(id: number, action: string, leaseToken: string | undefined): Row {
    const row = existing(id)
    if (row.state !== 1) {
      const why = row.state === 2 ? 'is already finished' : row.state === 3 ? 'has failed for good' : 'is not in progress'
      throw new Conflict(`Cannot ${action} task ${id}: it ${why}.`)
    }
    if (leaseToken !== undefined && leaseToken !== row.lease_token) {
      throw new Conflict(`Cannot ${action} task ${id}: the lease token does not match; the lease ran out and the task was claimed again.`)
    }
    return row
  }

  /** Records an event of task `id`; called inside the transaction of the change it describes. */
  const record = (id: number, t: number, event: number, ...details: EventDetails) =>
    q.event.run(id, t, event, details[0] ?? null, details[1] ?? null, details[2] ?? null, details[3] ?? null)
  /** The processing time of a claim made at `claimedAt` that ends at `t` (none for a claim from before it was kept). */
  const processingMs = (claimedAt: number | null, t: number) => (claimedAt === null ? null : Math.max(0, t - claimedAt))

  const create = db.transaction((ready: boolean, requestId: string | null, keyHash: string | null, traceParent: string | null): number => {
    const id = q.nextId.get()!.next
    const t = now()
    q.insert.get(id, t, ready ? 1 : 0, requestId, keyHash, traceParent)
    // A held task becomes visible, and so created, when it is activated.
    if (ready) record(id, t, EVENT.created)
    return id
  })

  const expiryListeners = new Set<(count: number) => void>()
  const expire = db.transaction((t: number): number => {
    const expired = q.expire.all(t, max, LEASE_RAN_OUT)
    for (const { id, state, attempts } of expired) {
      forget(id)
      record(id, t, EVENT.lease_expired, attempts, null, state === 3 ? 1 : 0)
    }
    return expired.length
  })

  /**
   * Puts back the tasks whose lease ran out, before any call reads or changes tasks: so every answer shows them back
   * at once. In a transaction of its own, so that a call that fails afterwards (a conflict) cannot undo it; nothing
   * runs between the two, as bun:sqlite calls are synchronous.
   */
  function expireLeases(t = now()): void {
    if (!q.anyExpired.get(t)) return
    const expired = expire.immediate(t)
    if (expired > 0) for (const listener of expiryListeners) listener(expired)
  }

  const claim = db.transaction((): ClaimResult => {
    const t = now()
    const leaseToken = crypto.randomUUID()
    const row = q.claim.get(t, t + leaseMs, leaseToken)
    if (row) {
      forget(row.id)
      record(row.id, t, EVENT.claimed, row.attempts + 1)
    }
    return { claim: row ? { task: toTask(row), leaseToken } : undefined }
  })

  const finish = db.transaction((id: number, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'finish', leaseToken)
    forget(id)
    const t = now()
    const row = q.finish.get(id, t)!
    record(id, t, EVENT.finished, claimed.attempts + 1, null, null, processingMs(claimed.claimed_at, t))
    return toTask(row)
  })

  const fail = db.transaction((id: number, error: string | undefined, leaseToken: string | undefined): Task => {
    inProgress(id, 'fail', leaseToken)
    forget(id)
    const t = now()
    const row = q.fail.get(id, t, max, error ?? 'no reason given')!
    record(id, t, EVENT.failed, row.attempts, row.error, row.state === 3 ? 1 : 0)
    return toTask(row)
  })

  const release = db.transaction((id: number, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'release', leaseToken)
    forget(id)
    const t = now()
    const row = q.release.get(id, t)!
    record(id, t, EVENT.released, claimed.attempts + 1)
    return toTask(row)
  })

  const renew = db.transaction((id: number, leaseToken: string): Task => {
    inProgress(id, 'renew the lease of', leaseToken)
    forget(id)
    const t = now()
    return toTask(q.renew.get(id, t + leaseMs, t)!)
  })

  const retry = db.transaction((id: number): Task => {
    const row = existing(id)
    if (row.state !== 3) throw new Conflict(`Cannot retry task ${id}: only a failed task (state 3) can be retried; it is in state ${row.state}.`)
    forget(id)
    const t = now()
    const updated = q.retry.get(id, t)!
    record(id, t, EVENT.retried)
    return toTask(updated)
  })

  const setState = db.transaction((id: number, state: 0 | 1 | 2): Task => {
    const before = existing(id)
    forget(id)
    const t = now()
    const row = q.setState.get(id, state, state === 1 ? t + leaseMs : null, t)!
    // The original /setById: the timeline shows what the state change amounts to.
    const event = setStateEvent(before.state, state)
    const claim = before.state === 1 ? before.attempts + 1 : null
    if (event === EVENT.claimed) record(id, t, event, before.attempts + 1)
    else if (event === EVENT.finished) record(id, t, event, claim, null, null, claim === null ? null : processingMs(before.claimed_at, t))
    else if (event === EVENT.released) record(id, t, event, claim)
    else if (event !== undefined) record(id, t, event)
    return toTask(row)
  })

  const activate = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || row.removing_until !== null) throw new NotFound(`No task with id ${id}.`)
    forget(id)
    const t = now()
    q.activate.get(id, t)
    if (row.ready === 0) record(id, t, EVENT.created)
  })

  const drop = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || (row.ready === 0 && row.removing_until !== null)) throw new NotFound(`No task with id ${id}.`)
    if (row.ready === 1) throw new Conflict(`Cannot drop task ${id}: it is not held for an upload.`)
    forget(id)
    q.drop.get(id, now())
  })

  const markOne = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || row.ready === 0) throw new NotFound(`No task with id ${id}.`)
    if (row.removing_until === null && row.state < 2) {
      throw new Conflict(`Cannot delete task ${id}: it is ${row.state === 0 ? 'waiting' : 'in progress'}; only a finished or failed task can be deleted.`)
    }
    forget(id)
    q.markOne.run(id, now() + REMOVAL_LEASE_MS)
  })

  const releaseRemoval = db.transaction((ids: readonly number[], t: number) => ids.forEach((id) => q.releaseRemoval.run(id, t)))
  const removeMarked = db.transaction((ids: readonly number[]): number =>
    ids.reduce((n, id) => {
      forget(id)
      return n + q.remove.run(id).changes
    }, 0),
  )

  const sample = db.transaction((t: number) => {
    const counts = Object.fromEntries(q.counts.all().map(({ state, n }) => [state, n]))
    q.sample.run(t - (t % 60_000), t, counts[0] ?? 0, counts[1] ?? 0)
    q.pruneMinutes.run(t - FIGURES_KEPT_MS)
    q.pruneSamples.run(t - FIGURES_KEPT_MS)
  })

  /** A visible task, after the expiry of its lease if that is due; from the rows kept when it is there. */
  function getVisible(id: number): Task | undefined {
    const t = now()
    let row = rows.get(id) ?? q.get.get(id)
    // Only a task in progress past its lease needs the expiry first: most reads cost one lookup.
    if (row && row.state === 1 && row.lease_until !== null && row.lease_until <= t) {
      expireLeases(t)
      row = q.get.get(id)
    }
    if (!row) return undefined
    remember(row)
    return toTask(row)
  }

  return {
    async create(opts) {
      return create.immediate(opts?.ready ?? true, opts?.requestId ?? null, opts?.keyHash ?? null, opts?.traceParent ?? null)
    },
    async get(id) {
      return getVisible(id)
    },
    async getMany(ids) {
      return ids.flatMap((id) => getVisible(id) ?? [])
    },
    async activate(id) {
      activate.immediate(id)
    },
    async drop(id) {
      drop.immediate(id)
    },
    async claim() {
      expireLeases()
      return claim.immediate()
    },
    async claimable() {
      expireLeases()
      return q.anyClaimable.get() !== null
    },
    async renew(id, leaseToken) {
      expireLeases()
      return renew.immediate(id, leaseToken)
    },
    async finish(id, leaseToken) {
      expireLeases()
      return finish.immediate(id, leaseToken)
    },
    async fail(id, error, leaseToken) {
      expireLeases()
      return fail.immediate(id, error, leaseToken)
    },
    async retry(id) {
      expireLeases()
      return retry.immediate(id)
    },
    async release(id, leaseToken) {
      expireLeases()
      return release.immediate(id, leaseToken)
    },
    async setState(id, state) {
      expireLeases()
      return setState.immediate(id, state)
    },
    async *list() {
      expireLeases()
      for (const row of q.all.iterate()) yield toTask(row)
    },
    async recent({ state, limit, before }) {
      expireLeases()
      const below = before ?? Number.MAX_SAFE_INTEGER
      const rows = state === undefined ? q.recent.all(below, limit) : q.recentInState.all(state, below, limit)
      return rows.map(toTask)
    },
    async countByState() {
      expireLeases()
      const counts: Record<TaskState, number> = { 0: 0, 1: 0, 2: 0, 3: 0 }
      for (const { state, n } of q.counts.all()) counts[state] = n
      return counts
    },
    async markForRemoval({ endedBefore, heldBefore, limit }) {
      expireLeases()
      const marked = q.markBatch.all(now(), endedBefore ?? null, heldBefore, limit, REMOVAL_LEASE_MS).map((row) => row.id)
      marked.forEach(forget)
      return marked
    },
    async markOneForRemoval(id) {
      expireLeases()
      markOne.immediate(id)
    },
    async releaseRemoval(ids) {
      releaseRemoval.immediate(ids, now())
    },
    async removeMarked(ids) {
      return removeMarked.immediate(ids)
    },
    async events(id) {
      const task = getVisible(id)
      return task && timeline(q.events.all(id), task.createdAt)
    },
    async figures({ from, to }) {
      const minutes = q.minutes.all(from, to).map(
        (row): MinuteFigures => ({
          minute: row.minute,
          created: row.created,
          finished: row.finished,
          failed: row.failed,
          failedForGood: row.failed_for_good,
          processing: PROCESSING_COLUMNS.map((c) => row[c]!),
        }),
      )
      const samples = q.samples.all(from, to).map((row): QueueSample => ({ minute: row.minute, at: row.at, waiting: row.waiting, inProgress: row.in_progress }))
      return { minutes, samples }
    },
    async sampleQueue() {
      const t = now()
      expireLeases(t)
      sample.immediate(t)
    },
    onLeasesExpired(listener) {
      expiryListeners.add(listener)
    },
    async healthy() {
      return existsSync(dir) && q.ping.get()?.one === 1
    },
    async close() {
      rows.clear()
      db.close()
    },
  }
}
