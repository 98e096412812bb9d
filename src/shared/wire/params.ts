// The wire's query parameters and plain-text answers, for every role's routes and every client: ids, keys, leases.
import { t } from 'elysia'

/** Canonical non-negative decimal, at most 15 digits so that every id is a safe integer. */
export const ID_PATTERN = '^(0|[1-9][0-9]{0,14})$'

export const IdString = t.String({
  pattern: ID_PATTERN,
  error: 'id must be a non-negative integer in canonical decimal form (0, 17, ...), at most 15 digits',
  description: 'Task id: a non-negative integer in canonical decimal form',
  examples: ['0'],
})

export const IdQuery = t.Object({ id: IdString })

/** `key=`: the task key an upload answered (PIXMILL_PRIVATE_RESULTS); any wrong or missing key reads as an unknown id. */
export const TaskKeyParam = t.String({
  description:
    'The task key that the upload answered in `X-Task-Key` (or send it in that header): needed when the system runs with ' +
    'PIXMILL_PRIVATE_RESULTS=1, unless the caller has the token; a missing or wrong key is answered as an unknown id (404)',
  examples: ['3q2-7wQy0k7oWbT2b9vJ9V3eWm1fHn0x'],
})

/** A task id and, for a private result, its key. */
export const KeyedIdQuery = t.Object({ id: IdString, key: t.Optional(TaskKeyParam) })

/** `wait=S` of a claim that may be held until a task can be claimed: whole seconds, 0-60. */
export const WaitSeconds = t.String({
  pattern: '^([0-9]|[1-5][0-9]|60)$',
  error: 'wait must be whole seconds, 0 to 60',
  description: 'Hold the call up to this many seconds until a task can be claimed (0: answer at once, as without it)',
  examples: ['20'],
})
export const ClaimQuery = t.Object({ wait: t.Optional(WaitSeconds) })

/** `lease=`: the token a claim answered, sent back to renew, finish, fail or release it. */
export const LeaseToken = t.String({
  minLength: 1,
  maxLength: 128,
  error: 'lease must be the lease token the claim answered with',
  description: 'The token of the claim (from `/getNewTask`); optional for original clients, checked when given',
})

/** The plain-text answers of the contract. */
export const Success = t.Literal('success', { description: 'The contract’s acknowledgement' })
export const ErrorText = t.String({ description: 'A text starting with `Error:`', examples: ['Error: ...'] })
