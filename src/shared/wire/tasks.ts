// The task on the wire, once: as the database keeps it, as the master shows it, as a claim hands it out, as an original
// role answers it; its counts, timeline and history. Routes answer with these, clients check what they receive by them.
// Plain TypeBox: Elysia's `t.Integer` and `t.Number` also take numeric strings, which a peer's JSON must not pass off as numbers.
import { type Static, Type as t } from '@sinclair/typebox'
import { ID_PATTERN } from './params.ts'

const TaskId = t.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Task id' })
const State = t.Integer({ minimum: 0, maximum: 3, description: '0 not started, 1 in progress, 2 finished, 3 failed' })

/** A task as the master shows it (`/status`, `/wait`, `/tasks`): no lease, no key. */
export const StatusJson = t.Object({
  id: TaskId,
  state: State,
  stateName: t.String(),
  attempts: t.Integer({ minimum: 0, description: 'Failed attempts so far' }),
  error: t.Optional(t.String({ description: 'Why the last attempt failed' })),
  createdAt: t.String({ format: 'date-time' }),
  updatedAt: t.String({ format: 'date-time' }),
})

/** The task as the database answers it: the original `{id, state}` and the project's extra fields. */
export const TaskJson = t.Composite([StatusJson, t.Object({ leaseExpiresAt: t.Optional(t.String({ format: 'date-time' })) })])

/** A task as `/getById` and `/getByIds` answer it: with the hash of its key, which the master checks a key against. */
export const TaskRecordJson = t.Composite([
  TaskJson,
  t.Object({ keyHash: t.Optional(t.String({ description: 'SHA-256 (hex) of the task key of a private result' })) }),
])

/** A task as an original database answers it, and all that an original master's claim carries. */
export const OriginalTaskJson = t.Object({ id: TaskId, state: t.Integer() })

/** What the database's claim answers. */
export const ClaimJson = t.Composite([
  TaskJson,
  t.Object({
    leaseToken: t.String({ description: 'Send back as `lease` to renew, finish, fail or release this claim' }),
    requestId: t.Optional(t.String({ description: 'The X-Request-Id of the upload, for following the task in the logs' })),
    traceparent: t.Optional(t.String({ description: 'The W3C trace context of the upload, which the worker’s spans continue' })),
  }),
])

/** A claim as any master or database may answer it: an original one's `{id, state}` has none of the project's fields. */
export const ReceivedClaimJson = t.Object({
  id: TaskId,
  state: t.Optional(t.Integer()),
  leaseToken: t.Optional(t.String()),
  leaseExpiresAt: t.Optional(t.String()),
  requestId: t.Optional(t.String()),
  traceparent: t.Optional(t.String()),
})

/**
 * All that a master of the original protocol can tell of a task, from `/isReady`: finished (2) or not yet (0, which
 * there means waiting or in progress). It has no `/status`, attempts, times or failed state.
 */
export const TaskReadinessJson = t.Object(
  {
    id: TaskId,
    state: t.Union([t.Literal(0), t.Literal(2)], { description: '2 finished, 0 not yet (waiting or in progress)' }),
    stateName: t.Union([t.Literal('not-finished'), t.Literal('finished')]),
    readinessOnly: t.Literal(true),
  },
  { description: 'From a master of the original protocol, which tells only whether the task is finished (`/isReady`)' },
)

/** A task as the frontend shows it: the master's status, or what an original master's `/isReady` tells. */
export const TaskStatusJson = t.Union([StatusJson, TaskReadinessJson])

/** The id a task-creating call answers, as text (`/newTask`, `/reserveTask`, `/new`, `/submitTask`). */
export const TASK_ID_TEXT = new RegExp(ID_PATTERN)

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
  'not-started': t.Integer({ minimum: 0 }),
  'in-progress': t.Integer({ minimum: 0 }),
  finished: t.Integer({ minimum: 0 }),
  failed: t.Integer({ minimum: 0 }),
})

export const TaskEventJson = t.Object({
  at: t.String({ format: 'date-time' }),
  event: t.Union(
    [
      t.Literal('created'),
      t.Literal('claimed'),
      t.Literal('finished'),
      t.Literal('failed'),
      t.Literal('lease_expired'),
      t.Literal('released'),
      t.Literal('retried'),
    ],
    {
      description:
        'created (visible to workers), claimed, finished, failed, lease_expired (a failed attempt too), released (given back by a worker), retried (by an operator)',
    },
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
const Percentile = t.Union([t.Number(), t.Null()], {
  description: 'ms, interpolated within its bucket as Prometheus’ histogram_quantile does; null with no task finished',
})

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

export type TaskStatus = Static<typeof StatusJson>
export type TaskRecord = Static<typeof TaskRecordJson>
export type TaskReadiness = Static<typeof TaskReadinessJson>
export type ReceivedClaim = Static<typeof ReceivedClaimJson>
export type TaskCounts = Static<typeof CountsJson>
/** One event of a task's timeline, as `/events` answers it. */
export type TaskEventRecord = Static<typeof TaskEventJson>
/** The charts' history, as `/history` answers it. */
export type TaskHistory = Static<typeof HistoryJson>
/** The windows of the master's `/history`. */
export type HistoryWindow = 'hour' | 'day'
