// Schemas of the database role's routes.
import { t } from 'elysia'
import { IdString } from '../../shared/schemas.ts'
import { KEY_HASH_PATTERN } from '../../shared/task-key.ts'
export { CountsJson, HistoryJson, HistoryQuery, RecentQuery, TaskEventsJson } from '../../shared/task-schemas.ts'
import type { HistoryBucket } from './history.ts'
import { STATE_NAMES, type Task, type TaskEvent } from './task-store.ts'

export const LeaseToken = t.String({
  minLength: 1,
  maxLength: 128,
  error: 'lease must be the lease token the claim answered with',
  description: 'The token of the claim (from `/getNewTask`); optional for original clients, checked when given',
})

/** Most ids one `/getByIds` asks for. */
export const MAX_IDS = 500

export const IdsQuery = t.Object({
  ids: t.String({
    pattern: `^(0|[1-9][0-9]{0,14})(,(0|[1-9][0-9]{0,14})){0,${MAX_IDS - 1}}$`,
    error: `ids must be 1 to ${MAX_IDS} task ids separated by commas (0,1,17)`,
    description: 'Task ids separated by commas',
  }),
})

export const IdLeaseQuery = t.Object({ id: IdString, lease: t.Optional(LeaseToken) })
export const RenewQuery = t.Object({ id: IdString, lease: LeaseToken })
export const FailQuery = t.Object({
  id: IdString,
  error: t.Optional(t.String({ maxLength: 2000, error: 'error must be a text of at most 2000 characters' })),
  lease: t.Optional(LeaseToken),
})

export const SetByIdBody = t.Object(
  {
    id: t.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, error: 'id must be a non-negative integer' }),
    state: t.Union([t.Literal(0), t.Literal(1), t.Literal(2)], { error: 'state must be 0, 1 or 2' }),
  },
  { error: 'the body must be a JSON task {"id": <int>, "state": 0, 1 or 2}' },
)

/** The task as JSON: the original `{id, state}` and the project's extra fields. */
export const TaskJson = t.Object({
  id: t.Integer(),
  state: t.Integer({ description: '0 not started, 1 in progress, 2 finished, 3 failed' }),
  stateName: t.String(),
  attempts: t.Integer({ description: 'Failed attempts so far' }),
  error: t.Optional(t.String({ description: 'Why the last attempt failed' })),
  createdAt: t.String({ format: 'date-time' }),
  updatedAt: t.String({ format: 'date-time' }),
  leaseExpiresAt: t.Optional(t.String({ format: 'date-time' })),
})

/** A task as `/getById` and `/getByIds` answer it: with the hash of its key, which the master checks a key against. */
export const TaskRecordJson = t.Composite([
  TaskJson,
  t.Object({ keyHash: t.Optional(t.String({ description: 'SHA-256 (hex) of the task key of a private result' })) }),
])

export const KeyHash = t.String({
  pattern: KEY_HASH_PATTERN,
  error: 'keyHash must be the SHA-256 of the task key, 64 lower-case hex digits',
  description: 'SHA-256 (hex) of the task key of a private result; only the hash is kept',
})
export const ReserveQuery = t.Object({ keyHash: t.Optional(KeyHash) })

export const ClaimJson = t.Composite([
  TaskJson,
  t.Object({
    leaseToken: t.String({ description: 'Send back as `lease` to renew, finish, fail or release this claim' }),
    requestId: t.Optional(t.String({ description: 'The X-Request-Id of the upload, for following the task in the logs' })),
    traceparent: t.Optional(t.String({ description: 'The W3C trace context of the upload, which the worker’s spans continue' })),
  }),
])

export function taskJson(task: Task) {
  return {
    id: task.id,
    state: task.state,
    stateName: STATE_NAMES[task.state],
    attempts: task.attempts,
    ...(task.error !== null ? { error: task.error } : {}),
    createdAt: new Date(task.createdAt).toISOString(),
    updatedAt: new Date(task.updatedAt).toISOString(),
    ...(task.leaseExpiresAt !== null ? { leaseExpiresAt: new Date(task.leaseExpiresAt).toISOString() } : {}),
  }
}

/** The task with its key hash, for the master's reads only (claims and lists leave it out: nobody else needs it). */
export function taskRecordJson(task: Task) {
  return { ...taskJson(task), ...(task.keyHash !== null ? { keyHash: task.keyHash } : {}) }
}


const iso = (ms: number) => new Date(ms).toISOString()

export function taskEventJson({ at, ...event }: TaskEvent) {
  return { at: iso(at), ...event }
}

export function historyJson(since: number, step: number, buckets: readonly HistoryBucket[]) {
  return {
    since: iso(since),
    step,
    buckets: buckets.map(({ at, processing, ...figures }) => ({ at: iso(at), ...figures, processingMs: processing })),
  }
}
