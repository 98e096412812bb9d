// The rows and prepared statements of the SQLite task store: its SQL in one place, apart from what the store does with it.
import type { Database } from 'bun:sqlite'
import { VISIBLE } from './sqlite-schema.ts'
import { EVENT, PROCESSING_COLUMNS } from './task-events.ts'
import type { MinuteFigures, QueueSample, Task, TaskState } from './task-store.ts'

export interface Row {
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

export function toTask(row: Row): Task {
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

/** Prepares every statement of the store once, on opening. */
export function prepareStatements(db: Database) {
  return {
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
}

export type Statements = ReturnType<typeof prepareStatements>

export function toMinuteFigures(row: MinuteRow): MinuteFigures {
  return {
    minute: row.minute,
    created: row.created,
    finished: row.finished,
    failed: row.failed,
    failedForGood: row.failed_for_good,
    processing: PROCESSING_COLUMNS.map((c) => row[c]!),
  }
}

export function toQueueSample(row: { minute: number; at: number; waiting: number; in_progress: number }): QueueSample {
  return { minute: row.minute, at: row.at, waiting: row.waiting, inProgress: row.in_progress }
}
