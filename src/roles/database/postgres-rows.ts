// The rows of the PostgreSQL task store as Bun returns them, and what the store's parts run their statements with.
import type { SQL } from 'bun'
import type { Guard } from './postgres-errors.ts'
import type { Task, TaskState } from './task-store.ts'

/** A row as Bun returns it: BIGINT columns arrive as strings. */
export interface Row {
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

export function toTask(row: Row): Task {
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

/** A visible task: one held for its upload or being removed is seen by no read. */
export async function visibleRow(sql: SQL, id: number): Promise<Row | undefined> {
  const rows = await sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id = ${id} AND ready AND removing_until IS NULL`
  return rows[0]
}

/** A task whatever it is: held, being removed or visible. */
export async function anyRow(sql: SQL, id: number): Promise<Row | undefined> {
  return (await sql<Row[]>`SELECT * FROM pixmill_tasks WHERE id = ${id}`)[0]
}

/** The pool, the clock and the guards that every part of one store shares. */
export interface StoreContext {
  readonly sql: SQL
  readonly now: () => number
  readonly guarded: Guard
  /** Runs `work` once the leases that ran out by now are put back. */
  readonly fresh: <T>(work: (t: number) => Promise<T>) => Promise<T>
  /** As `guarded`, then forgets the cached counts, so that this instance's own reads after its writes are never stale. */
  readonly guardedWrite: <T>(work: () => Promise<T>) => Promise<T>
  /** As `fresh`, then forgets the cached counts. */
  readonly freshWrite: <T>(work: (t: number) => Promise<T>) => Promise<T>
}
