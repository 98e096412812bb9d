// Task events as both stores keep them: a small code per event, and the columns of the per-minute figures.
import { PROCESSING_BUCKETS_MS, type TaskEvent, type TaskEventName } from './task-store.ts'

/** Stored codes of the events (a byte per row rather than a name); never renumbered, as rows keep them. */
export const EVENT = { created: 0, claimed: 1, finished: 2, failed: 3, lease_expired: 4, released: 5, retried: 6 } as const

const NAMES = Object.fromEntries(Object.entries(EVENT).map(([name, code]) => [code, name])) as Record<number, TaskEventName>

/** Events that the per-minute figures count: created, finished, failed and lease_expired (a failed attempt too). */
export const COUNTED_EVENTS = `${EVENT.created}, ${EVENT.finished}, ${EVENT.failed}, ${EVENT.lease_expired}`

/** The figures' processing-time columns, one per bucket: `ms_le_10` ... `ms_le_60000`, then `ms_le_inf`. */
export const PROCESSING_COLUMNS = [...PROCESSING_BUCKETS_MS.map((bound) => `ms_le_${bound}`), 'ms_le_inf']

/** SQL: the index of the bucket `ms` (an integer expression) falls in: the first bound at or above it, else the last. */
export function bucketOf(ms: string): string {
  return `CASE ${PROCESSING_BUCKETS_MS.map((bound, i) => `WHEN ${ms} <= ${bound} THEN ${i}`).join(' ')} ELSE ${PROCESSING_BUCKETS_MS.length} END`
}

/** A stored event as either store reads it back (PostgreSQL answers BIGINT as text, booleans as booleans). */
export interface EventRow {
  at: number | string
  event: number
  attempt: number | null
  error: string | null
  for_good: number | boolean | null
  ms: number | null
}

export function toEvent(row: EventRow): TaskEvent {
  return {
    at: Number(row.at),
    event: NAMES[row.event] ?? 'created',
    ...(row.attempt !== null ? { attempt: row.attempt } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
    ...(row.for_good !== null ? { forGood: Boolean(row.for_good) } : {}),
    ...(row.ms !== null ? { ms: row.ms } : {}),
  }
}

/** The timeline of a task: its events, led by a `created` made from its creation time when it has none (older tasks). */
export function timeline(rows: readonly EventRow[], createdAt: number): TaskEvent[] {
  const events = rows.map(toEvent)
  return events.some((e) => e.event === 'created') ? events : [{ at: createdAt, event: 'created' }, ...events]
}

/** Which event a state set through the original `/setById` makes, from `from` to `to`; none when the state stays. */
export function setStateEvent(from: number, to: 0 | 1 | 2): number | undefined {
  if (from === to) return undefined
  if (to === 1) return EVENT.claimed
  if (to === 2) return EVENT.finished
  // Back to waiting: a claim given back, or a finished or failed task put back.
  return from === 1 ? EVENT.released : EVENT.retried
}
