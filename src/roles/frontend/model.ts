// Schemas of the frontend role's routes: validation and the Swagger page both come from here.
import { t } from 'elysia'
import { ID_PATTERN } from '../../shared/wire/params.ts'
import { CountsJson, TaskStatusJson } from '../../shared/wire/tasks.ts'

export { TaskStatusJson } from '../../shared/wire/tasks.ts'

const ONE_ID = ID_PATTERN.slice(1, -1)

/** Most tasks one page may watch over one event stream. */
export const MAX_WATCHED_IDS = 100

export { KeyedIdQuery } from '../../shared/wire/params.ts'

/** A task key as the master makes them (base64url); an empty place in `keys` is a task without one. */
const ONE_KEY = '[A-Za-z0-9_-]{0,128}'

export const EventsQuery = t.Object({
  ids: t.String({
    pattern: `^${ONE_ID}(,${ONE_ID}){0,${MAX_WATCHED_IDS - 1}}$`,
    error: `ids must be 1 to ${MAX_WATCHED_IDS} task ids separated by commas (0,1,17)`,
    description: 'Task ids separated by commas',
    examples: ['0,1,2'],
  }),
  keys: t.Optional(
    t.String({
      pattern: `^${ONE_KEY}(,${ONE_KEY}){0,${MAX_WATCHED_IDS - 1}}$`,
      error: `keys must be up to ${MAX_WATCHED_IDS} task keys separated by commas, one for each id in turn`,
      description: 'The task keys of private results, one for each id in turn (empty for a task without one)',
    }),
  ),
})

export const ConfigJson = t.Object({
  maxUploadBytes: t.Integer({ description: 'The largest PNG accepted, in bytes (PIXMILL_MAX_UPLOAD_BYTES)' }),
  field: t.Literal('uploadfile', { description: 'The form field of the file' }),
})

const WorkerViewJson = t.Object({
  address: t.String(),
  reachable: t.Boolean({ description: 'It answered its /status just now; else the figures are the last it gave' }),
  loops: t.Nullable(t.Integer()),
  busy: t.Nullable(t.Integer({ description: 'Loops with a task in flight' })),
  done: t.Nullable(t.Integer({ description: 'Tasks finished since it started' })),
  failed: t.Nullable(t.Integer({ description: 'Tasks it reported failed since it started' })),
  lastSeen: t.Nullable(t.String({ format: 'date-time' })),
  problem: t.Nullable(t.String()),
})

/** The live workers, on both kinds of board. */
const boardWorkers = {
  workers: t.Array(WorkerViewJson, { description: 'The workers registered in kv, by address' }),
  workersProblem: t.Optional(t.String({ description: 'Why the workers cannot be listed (kv unreachable)' })),
}

export const BoardJson = t.Union([
  t.Object({
    counts: CountsJson,
    latest: t.Array(TaskStatusJson, { description: 'The newest tasks, newest first' }),
    failed: t.Array(TaskStatusJson, { description: 'The newest failed tasks, with their reason' }),
    ...boardWorkers,
    generatedAt: t.String({ format: 'date-time' }),
  }),
  t.Object(
    { unavailable: t.String({ description: 'Why there is nothing to show' }), ...boardWorkers, generatedAt: t.String({ format: 'date-time' }) },
    { description: 'The master offers no counts or task lists (a master of the original protocol)' },
  ),
])

/** The form of `/submitTask`, declared for the Swagger page (a `body:` schema would make Elysia read the whole form). */
export const uploadFormBody = {
  required: true,
  description: 'A multipart form with one PNG in the field `uploadfile`; the file is streamed to the master as it arrives',
  content: {
    'multipart/form-data': {
      schema: { type: 'object' as const, required: ['uploadfile'], properties: { uploadfile: { type: 'string' as const, format: 'binary' } } },
    },
  },
}

const text = (description: string) => ({ description, content: { 'text/plain': { schema: { type: 'string' as const, example: 'Error: ...' } } } })

export const submitResponses = {
  200: {
    description: 'The new task id, as text; with PIXMILL_PRIVATE_RESULTS the `X-Task-Key` header holds the key that reading the task needs',
    headers: { 'X-Task-Key': { description: 'The task key (PIXMILL_PRIVATE_RESULTS only)', schema: { type: 'string' } } },
    content: { 'text/plain': { schema: { type: 'string', example: '0' } } },
  },
  303: { description: 'With the page form field `respond=page` (the page without JavaScript): sent on to `/task?id=`' },
  400: text('No file in `uploadfile`, more than one file, a file in another field, or a broken form'),
  413: text('The file is larger than PIXMILL_MAX_UPLOAD_BYTES'),
  415: text('Not a multipart form, or the file is not a PNG'),
  429: text('Too many uploads from this address (PIXMILL_UPLOADS_PER_MINUTE); `Retry-After` says when to try again'),
  502: text('The master failed'),
  503: text('The master cannot be reached'),
} as const

export const getImageResponses = {
  200: { description: 'The finished PNG, as the master answers it', content: { 'image/png': { schema: { type: 'string', format: 'binary' } } } },
  404: text('Unknown task, not finished yet, or (private results) a missing or wrong key'),
} as const

export const eventsResponses = {
  200: {
    description:
      'Server-sent events: `status` (data: the task as in /api/status) at once and on every change, `unknown` (data: {id}) for an id ' +
      'the master does not know, `trouble`/`recovered` while the master cannot be reached, and a comment every few seconds to keep the line open.',
    content: { 'text/event-stream': { schema: { type: 'string' } } },
  },
} as const
