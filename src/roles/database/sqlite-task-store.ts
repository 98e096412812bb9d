// TaskStore on bun:sqlite (WAL): every acknowledged change is committed before the call returns.
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { Conflict, NotFound } from '../../shared/errors.ts'
import { migrateSqlite, VISIBLE } from './sqlite-schema.ts'
import { EVENT, eventText, PROCESSING_COLUMNS, parseEvents, setStateEvent } from './task-events.ts'
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

/** A task's columns but its events, which only `events()` reads: rows kept in memory stay small. */
const COLUMNS =
  'id, state, attempts, error, created_at, updated_at, lease_until, lease_token, ready, request_id, trace_parent, removing_until, key_hash, claimed_at'

/** SQL: appends the event `text` (an SQL expression, see task-events.ts) to the task's timeline. */
const append = (text: string) => `events = coalesce(events || ',', '') || ${text}`

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
    insert: db.prepare<unknown, [number, number, number, string | null, string | null, string | null, string | null]>(
      'INSERT INTO tasks (id, created_at, updated_at, ready, request_id, key_hash, trace_parent, events) VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7)',
    ),
    get: db.prepare<Row, [number]>(`SELECT ${COLUMNS} FROM tasks WHERE id = ? AND ${VISIBLE}`),
    getAny: db.prepare<Row, [number]>(`SELECT ${COLUMNS} FROM tasks WHERE id = ?`),
    activate: db.prepare<unknown, [number, number, string | null]>(
      `UPDATE tasks SET ready = 1, updated_at = ?2, events = CASE WHEN ?3 IS NULL THEN events ELSE coalesce(events || ',', '') || ?3 END WHERE id = ?1`,
    ),
    // A dropped task is removed by the next sweep, with any image that reached storage after all (an answer lost).
    drop: db.prepare<unknown, [number, number]>('UPDATE tasks SET removing_until = ?2 WHERE id = ?1 AND ready = 0'),
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
    expire: db.prepare<{ id: number }, [number, number, string]>(
      `UPDATE tasks INDEXED BY tasks_leased SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ?2 THEN 3 ELSE 0 END,
         error = ?3, lease_until = NULL, lease_token = NULL, updated_at = ?1,
         ${append(`'[' || ?1 || ',${EVENT.lease_expired},' || (attempts + 1) || ',' || (attempts + 1 >= ?2) || ']'`)}
       WHERE state = 1 AND lease_until <= ?1 RETURNING id`,
    ),
    anyClaimable: db.prepare<{ one: number }, []>('SELECT 1 AS one FROM tasks INDEXED BY tasks_claimable WHERE state = 0 AND ready = 1 LIMIT 1'),
    anyExpired: db.prepare<{ one: number }, [number]>('SELECT 1 AS one FROM tasks INDEXED BY tasks_leased WHERE state = 1 AND lease_until <= ? LIMIT 1'),
    claim: db.prepare<Row, [number, number, string]>(
      `UPDATE tasks SET state = 1, lease_until = ?2, lease_token = ?3, updated_at = ?1, claimed_at = ?1,
         ${append(`'[' || ?1 || ',${EVENT.claimed},' || (attempts + 1) || ']'`)}
       WHERE id = (SELECT id FROM tasks WHERE state = 0 AND ready = 1 ORDER BY id LIMIT 1) RETURNING ${COLUMNS}`,
    ),
    renew: db.prepare<Row, [number, number, number]>(`UPDATE tasks SET lease_until = ?2, updated_at = ?3 WHERE id = ?1 RETURNING ${COLUMNS}`),
    // The rest append an event made in JS (?N), from the row read before: the transaction holds it unchanged.
    finish: db.prepare<Row, [number, number, string]>(
      `UPDATE tasks SET state = 2, lease_until = NULL, lease_token = NULL, updated_at = ?2, ${append('?3')} WHERE id = ?1 RETURNING ${COLUMNS}`,
    ),
    fail: db.prepare<Row, [number, number, number, string | null, string]>(
      `UPDATE tasks SET attempts = attempts + 1, state = CASE WHEN attempts + 1 >= ?3 THEN 3 ELSE 0 END,
         error = ?4, lease_until = NULL, lease_token = NULL, updated_at = ?2, ${append('?5')} WHERE id = ?1 RETURNING ${COLUMNS}`,
    ),
    release: db.prepare<Row, [number, number, string]>(
      `UPDATE tasks SET state = 0, lease_until = NULL, lease_token = NULL, updated_at = ?2, ${append('?3')} WHERE id = ?1 RETURNING ${COLUMNS}`,
    ),
    retry: db.prepare<Row, [number, number, string]>(
      `UPDATE tasks SET state = 0, attempts = 0, error = NULL, updated_at = ?2, ${append('?3')} WHERE id = ?1 RETURNING ${COLUMNS}`,
    ),
    setState: db.prepare<Row, [number, number, number | null, number, string | null]>(
      `UPDATE tasks SET state = ?2, lease_until = ?3, lease_token = NULL, updated_at = ?4, claimed_at = CASE WHEN ?2 = 1 THEN ?4 ELSE claimed_at END,
         events = CASE WHEN ?5 IS NULL THEN events ELSE coalesce(events || ',', '') || ?5 END
       WHERE id = ?1 RETURNING ${COLUMNS}`,
    ),
    all: db.prepare<Row, []>(`SELECT ${COLUMNS} FROM tasks WHERE ${VISIBLE} ORDER BY id`),
    recent: db.prepare<Row, [number, number]>(`SELECT ${COLUMNS} FROM tasks WHERE id < ? AND ${VISIBLE} ORDER BY id DESC LIMIT ?`),
    recentInState: db.prepare<Row, [number, number, number]>(`SELECT ${COLUMNS} FROM tasks WHERE state = ? AND id < ? AND ${VISIBLE} ORDER BY id DESC LIMIT ?`),
    events: db.prepare<{ events: string | null }, [number]>('SELECT events FROM tasks WHERE id = ?'),
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

  /** The processing time of a claim made at `claimedAt` that ends at `t` (none for a claim from before it was kept). */
  const processingMs = (claimedAt: number | null, t: number) => (claimedAt === null ? null : Math.max(0, t - claimedAt))

  const create = db.transaction((ready: boolean, requestId: string | null, keyHash: string | null, traceParent: string | null): number => {
    const id = q.nextId.get()!.next
    const t = now()
    // A held task becomes visible, and so created, when it is activated.
    q.insert.run(id, t, ready ? 1 : 0, requestId, keyHash, traceParent, ready ? eventText(t, EVENT.created) : null)
    return id
  })

  const expiryListeners = new Set<(count: number) => void>()
  const expire = db.transaction((t: number): number => {
    const expired = q.expire.all(t, max, LEASE_RAN_OUT)
    for (const { id } of expired) forget(id)
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
    if (row) forget(row.id)
    return { claim: row ? { task: toTask(row), leaseToken } : undefined }
  })

  const finish = db.transaction((id: number, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'finish', leaseToken)
    forget(id)
    const t = now()
    return toTask(q.finish.get(id, t, eventText(t, EVENT.finished, claimed.attempts + 1, null, processingMs(claimed.claimed_at, t)))!)
  })

  const fail = db.transaction((id: number, error: string | undefined, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'fail', leaseToken)
    forget(id)
    const t = now()
    const reason = error ?? 'no reason given'
    const attempt = claimed.attempts + 1
    return toTask(q.fail.get(id, t, max, reason, eventText(t, EVENT.failed, attempt, attempt >= max, null, reason))!)
  })

  const release = db.transaction((id: number, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'release', leaseToken)
    forget(id)
    const t = now()
    return toTask(q.release.get(id, t, eventText(t, EVENT.released, claimed.attempts + 1))!)
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
    return toTask(q.retry.get(id, t, eventText(t, EVENT.retried))!)
  })

  const setState = db.transaction((id: number, state: 0 | 1 | 2): Task => {
    const before = existing(id)
    forget(id)
    const t = now()
    // The original /setById: the timeline shows what the state change amounts to.
    const event = setStateEvent(before.state, state)
    const claim = before.state === 1 ? before.attempts + 1 : null
    const text =
      event === undefined
        ? null
        : event === EVENT.claimed
          ? eventText(t, event, before.attempts + 1)
          : event === EVENT.finished
            ? eventText(t, event, claim, null, claim === null ? null : processingMs(before.claimed_at, t))
            : event === EVENT.released
              ? eventText(t, event, claim)
              : eventText(t, event)
    return toTask(q.setState.get(id, state, state === 1 ? t + leaseMs : null, t, text)!)
  })

  const activate = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || row.removing_until !== null) throw new NotFound(`No task with id ${id}.`)
    forget(id)
    const t = now()
    q.activate.run(id, t, row.ready === 0 ? eventText(t, EVENT.created) : null)
  })

  const drop = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || (row.ready === 0 && row.removing_until !== null)) throw new NotFound(`No task with id ${id}.`)
    if (row.ready === 1) throw new Conflict(`Cannot drop task ${id}: it is not held for an upload.`)
    forget(id)
    q.drop.run(id, now())
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

  const releaseRemoval = db.transaction((ids: readonly number[], t: number) => {
    for (const id of ids) q.releaseRemoval.run(id, t)
  })
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
      return task && parseEvents(q.events.get(id)?.events ?? null, task.createdAt)
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
