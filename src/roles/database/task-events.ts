// Task events as both stores keep them (PostgreSQL: a row each; bun:sqlite: in the task's row), and the columns of the
// per-minute figures.
import { PROCESSING_BUCKETS_MS, type TaskEvent, type TaskEventName } from './task-store.ts'

/** Stored codes of the events (a byte or a digit rather than a name); never renumbered, as rows keep them. */
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

/** A stored event as PostgreSQL reads it back (BIGINT as text, booleans as booleans). */
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

/**
 * bun:sqlite keeps a task's events in its row (column `events`), each a JSON array
 * `[at, code, attempt, forGood (0/1), ms, error]` without trailing nulls, joined by commas: appending one is a string
 * concatenation in the UPDATE that makes the change, so that recording it adds no row or index entry of its own (a
 * table of events cost about a fifth more CPU per claim), and it goes with the task. `eventText` makes one in JS; the
 * store's SQL makes the same where the values are only known to the statement.
 */
export function eventText(at: number, code: number, attempt?: number | null, forGood?: boolean | null, ms?: number | null, error?: string | null): string {
  const fields: unknown[] = [at, code, attempt ?? null, forGood === undefined || forGood === null ? null : forGood ? 1 : 0, ms ?? null, error ?? null]
  while (fields.at(-1) === null) fields.pop()
  return JSON.stringify(fields)
}

/** A timeline from a task's `events` column, led by a `created` made from its creation time when it has none. */
export function parseEvents(text: string | null, createdAt: number): TaskEvent[] {
  const rows = text ? (JSON.parse(`[${text}]`) as (number | string | null)[][]) : []
  const events = rows.map(
    ([at, code, attempt, forGood, ms, error]): TaskEvent => ({
      at: Number(at),
      event: NAMES[Number(code)] ?? 'created',
      ...(attempt != null ? { attempt: Number(attempt) } : {}),
      ...(error != null ? { error: String(error) } : {}),
      ...(forGood != null ? { forGood: forGood === 1 } : {}),
      ...(ms != null ? { ms: Number(ms) } : {}),
    }),
  )
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

/**
 * SQL of the per-minute figures' rules, over a task's row before (`OLD`) and after (`NEW`) a change, for bun:sqlite's
 * triggers: a task becomes visible (created), reaches state 2 (finished, with its processing time when it came
 * from a claim), or gains a failed attempt (failed: a failure or a lease that ran out; for good when it is now state 3).
 */
export const FIGURE_RULES = {
  /** When an update counts at all (the triggers' WHEN): claims, renewals, releases, retries and removals do not. */
  counted: '(NEW.ready AND NOT OLD.ready) OR (NEW.state = 2 AND OLD.state <> 2) OR NEW.attempts > OLD.attempts',
  created: '(NEW.ready AND NOT OLD.ready)',
  finished: '(NEW.state = 2 AND OLD.state <> 2)',
  failed: '(NEW.attempts > OLD.attempts)',
  failedForGood: '(NEW.attempts > OLD.attempts AND NEW.state = 3)',
  /** The processing time of a finish, or NULL: from the claim (OLD.claimed_at) to the change (NEW.updated_at). */
  ms: 'CASE WHEN NEW.state = 2 AND OLD.state = 1 AND OLD.claimed_at IS NOT NULL THEN NEW.updated_at - OLD.claimed_at END',
}
