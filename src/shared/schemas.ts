// Schemas shared by several roles: ids and the like. Validation and the Swagger page both come from here.
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

/** `wait=S` of a claim that may be held until a task can be claimed: whole seconds, 0-60. */
export const WaitSeconds = t.String({
  pattern: '^([0-9]|[1-5][0-9]|60)$',
  error: 'wait must be whole seconds, 0 to 60',
  description: 'Hold the call up to this many seconds until a task can be claimed (0: answer at once, as without it)',
  examples: ['20'],
})
export const ClaimQuery = t.Object({ wait: t.Optional(WaitSeconds) })

/** The plain-text answers of the contract. */
export const Success = t.Literal('success', { description: 'The contract’s acknowledgement' })
export const ErrorText = t.String({ description: 'A text starting with `Error:`', examples: ['Error: ...'] })
