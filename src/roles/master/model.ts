// Schemas of the master role's routes.
import { t } from 'elysia'
import { IdString, TaskKeyParam } from '../../shared/schemas.ts'
export { KeyedIdQuery } from '../../shared/schemas.ts'

export const LeaseQuery = t.Object({
  id: IdString,
  lease: t.Optional(t.String({ minLength: 1, maxLength: 128, error: 'lease must be the lease token of the claim' })),
})
export const FinishedQuery = t.Object({
  id: IdString,
  lease: t.Optional(t.String({ minLength: 1, maxLength: 128, error: 'lease must be the lease token of the claim' })),
  ms: t.Optional(t.String({ pattern: '^(0|[1-9][0-9]{0,8})$', error: 'ms must be the processing time in whole milliseconds' })),
})
export const RenewQuery = t.Object({
  id: IdString,
  lease: t.String({ minLength: 1, maxLength: 128, error: 'lease must be the lease token of the claim' }),
})
export const FailedQuery = t.Object({
  id: IdString,
  error: t.Optional(t.String({ maxLength: 2000, error: 'error must be a text of at most 2000 characters' })),
  lease: t.Optional(t.String({ minLength: 1, maxLength: 128, error: 'lease must be the lease token of the claim' })),
})

export const KeyedWaitQuery = t.Object({
  id: IdString,
  key: t.Optional(TaskKeyParam),
  timeout: t.Optional(
    t.String({
      pattern: '^([1-9]|[1-5][0-9]|60)$',
      error: 'timeout must be whole seconds, 1 to 60',
      description: 'Seconds to wait at most (1-60, default 30); then the task is answered as it is',
      examples: ['30'],
    }),
  ),
})

export const StatusJson = t.Object({
  id: t.Integer(),
  state: t.Integer({ description: '0 not started, 1 in progress, 2 finished, 3 failed' }),
  stateName: t.String(),
  attempts: t.Integer(),
  error: t.Optional(t.String()),
  createdAt: t.String({ format: 'date-time' }),
  updatedAt: t.String({ format: 'date-time' }),
})

/** The raw PNG body, declared so that the Swagger page offers a file picker (no `body:` schema, see STACK.md). */
export const pngRequestBody = {
  required: true,
  content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
} as const

export const pngResponse = {
  description: 'The PNG',
  content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
} as const
