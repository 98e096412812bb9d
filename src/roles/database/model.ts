// Schemas of the database role's routes.
import { t } from 'elysia'
import { KEY_HASH_PATTERN } from '../../shared/task-key.ts'
import { IdString, LeaseToken } from '../../shared/wire/params.ts'

export { ClaimJson, CountsJson, HistoryJson, HistoryQuery, RecentQuery, TaskEventsJson, TaskJson, TaskRecordJson } from '../../shared/wire/tasks.ts'

import type { HistoryBucket } from './history.ts'
import { STATE_NAMES, type Task, type TaskEvent } from './task-store.ts'

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

export const KeyHash = t.String({
  pattern: KEY_HASH_PATTERN,
  error: 'keyHash must be the SHA-256 of the task key, 64 lower-case hex digits',
  description: 'SHA-256 (hex) of the task key of a private result; only the hash is kept',
})
export const ReserveQuery = t.Object({ keyHash: t.Optional(KeyHash) })

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
