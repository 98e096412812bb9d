// Schemas of the master role's routes.
import { t } from 'elysia'
import { IdString, LeaseToken, TaskKeyParam } from '../../shared/wire/params.ts'

export { KeyedIdQuery } from '../../shared/wire/params.ts'
export { StatusJson } from '../../shared/wire/tasks.ts'

export const LeaseQuery = t.Object({
  id: IdString,
  lease: t.Optional(LeaseToken),
})
export const FinishedQuery = t.Object({
  id: IdString,
  lease: t.Optional(LeaseToken),
  ms: t.Optional(t.String({ pattern: '^(0|[1-9][0-9]{0,8})$', error: 'ms must be the processing time in whole milliseconds' })),
})
export const RenewQuery = t.Object({
  id: IdString,
  lease: LeaseToken,
})
export const FailedQuery = t.Object({
  id: IdString,
  error: t.Optional(t.String({ maxLength: 2000, error: 'error must be a text of at most 2000 characters' })),
  lease: t.Optional(LeaseToken),
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

/** The raw PNG body, declared so that the Swagger page offers a file picker (no `body:` schema, see STACK.md). */
export const pngRequestBody = {
  required: true,
  content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
} as const

export const pngResponse = {
  description: 'The PNG',
  content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
} as const
