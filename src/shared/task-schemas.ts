// Schemas of task listings, shared by the database and the master that passes them on.
import { t } from 'elysia'

export const RecentQuery = t.Object({
  state: t.Optional(t.Union([t.Literal('0'), t.Literal('1'), t.Literal('2'), t.Literal('3')], { error: 'state must be 0, 1, 2 or 3' })),
  limit: t.Optional(t.String({ pattern: '^([1-9][0-9]?|1[0-9][0-9]|200)$', error: 'limit must be an integer from 1 to 200' })),
})

export const CountsJson = t.Object({
  'not-started': t.Integer(),
  'in-progress': t.Integer(),
  finished: t.Integer(),
  failed: t.Integer(),
})
