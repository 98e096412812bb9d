// Schemas of task listings, timelines and history, shared by the database and the master that passes them on.
import { type Static, t } from 'elysia'
import { ID_PATTERN } from './schemas.ts'

export const RecentQuery = t.Object({
  state: t.Optional(t.Union([t.Literal('0'), t.Literal('1'), t.Literal('2'), t.Literal('3')], { error: 'state must be 0, 1, 2 or 3' })),
  limit: t.Optional(t.String({ pattern: '^([1-9][0-9]?|1[0-9][0-9]|200)$', error: 'limit must be an integer from 1 to 200' })),
  before: t.Optional(
    t.String({
      pattern: ID_PATTERN,
      error: 'before must be a task id (a non-negative integer in canonical decimal form)',
      description: 'Only tasks with a smaller id: the last id of the previous page, so that pages stay put while new tasks arrive',
    }),
  ),
})

export const CountsJson = t.Object({
  'not-started': t.Integer(),
  'in-progress': t.Integer(),
  finished: t.Integer(),
  failed: t.Integer(),
})

export const TaskEventJson = t.Object({
  at: t.String({ format: 'date-time' }),
  event: t.Union(
    [t.Literal('created'), t.Literal('claimed'), t.Literal('finished'), t.Literal('failed'), t.Literal('lease_expired'), t.Literal('released'), t.Literal('retried')],
    { description: 'created (visible to workers), claimed, finished, failed, lease_expired (a failed attempt too), released (given back by a worker), retried (by an operator)' },
  ),
  attempt: t.Optional(t.Integer({ description: 'The attempt the event belongs to (failed attempts before it + 1)' })),
  error: t.Optional(t.String({ description: 'Why the attempt failed (failed)' })),
  forGood: t.Optional(t.Boolean({ description: 'Whether the failure ended the task (failed, lease_expired); else it waits for another attempt' })),
  ms: t.Optional(t.Integer({ description: 'Processing time, from the attempt’s claim to its finish (finished)' })),
})

export const TaskEventsJson = t.Array(TaskEventJson, { description: 'The task’s events, oldest first' })

/** Epoch milliseconds in a query: a non-negative integer of at most 15 digits. */
const EpochMs = t.String({ pattern: ID_PATTERN, error: 'since must be epoch milliseconds (a non-negative integer)', description: 'Epoch milliseconds' })

export const HistoryQuery = t.Object({
  since: EpochMs,
  step: t.String({
    pattern: '^[1-9][0-9]{0,9}$',
    error: 'step must be a whole number of milliseconds, a multiple of 60000',
    description: 'Bucket length in ms: a multiple of 60000 (a minute)',
  }),
})

export const HistoryWindowQuery = t.Object({
  window: t.Optional(
    t.Union([t.Literal('hour'), t.Literal('day')], {
      error: 'window must be hour or day',
      description: 'hour (default): the last 60 minutes, a bucket per minute; day: the last 24 hours, a bucket per 15 minutes',
    }),
  ),
})

const Count = t.Integer({ minimum: 0 })
const Depth = t.Union([t.Integer({ minimum: 0 }), t.Null()], { description: 'The last sample in the bucket; null when none was taken' })
const Percentile = t.Union([t.Number(), t.Null()], { description: 'ms, interpolated within its bucket as Prometheus’ histogram_quantile does; null with no task finished' })

export const HistoryJson = t.Object({
  since: t.String({ format: 'date-time', description: 'The first bucket’s start (since, rounded down to a minute)' }),
  step: t.Integer({ description: 'Bucket length, ms' }),
  buckets: t.Array(
    t.Object({
      at: t.String({ format: 'date-time', description: 'The bucket’s start' }),
      created: Count,
      finished: Count,
      failed: t.Integer({ minimum: 0, description: 'Failed attempts, leases that ran out included' }),
      failedForGood: Count,
      waiting: Depth,
      inProgress: Depth,
      processingMs: t.Object({ count: Count, p50: Percentile, p95: Percentile }),
    }),
    { description: 'Every bucket from since to now, oldest first; zeros for quiet ones' },
  ),
})

/** One event of a task's timeline, as `/events` answers it. */
export type TaskEventRecord = Static<typeof TaskEventJson>
/** The charts' history, as `/history` answers it. */
export type TaskHistory = Static<typeof HistoryJson>
/** The windows of the master's `/history`. */
export type HistoryWindow = 'hour' | 'day'
