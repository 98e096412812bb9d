// The master's reads of tasks: `/isReady`, `/get`, `/status`, `/wait` (one task, its key when results are private) and `/tasks`.
import { Elysia, t } from 'elysia'
import type { DatabaseClient, PlainTaskRecord, TaskRecord } from '../../clients/database-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import { type Access, accessMacro } from '../../plugins/access.ts'
import { NotFound, NotOffered } from '../../shared/errors.ts'
import { unknownTask } from '../../shared/task-key.ts'
import { IMAGE_ANSWER_HEADERS, IMAGE_REQUEST_HEADERS, pickHeaders } from '../../shared/wire/headers.ts'
import { ErrorText } from '../../shared/wire/params.ts'
import { RecentQuery } from '../../shared/wire/tasks.ts'
import { KeyedIdQuery, KeyedWaitQuery, pngResponse, StatusJson } from './model.ts'
import type { ReadAccess, TaskAccess } from './task-access.ts'
import type { TaskStates } from './task-states.ts'
import type { TaskWaits } from './task-waits.ts'

export interface ReadRouteDeps {
  readonly database: DatabaseClient
  readonly storage: StorageClient
  readonly states: TaskStates
  readonly waits: TaskWaits
  readonly access: TaskAccess
  /** A task's reads: open, or `keyed` with private results. */
  readonly reads: Access
  /** `/tasks`, a list of everyone's tasks: open, or for operators with private results. */
  readonly everyones: Access
}

/** The public view of a task: no lease token, no internal flags. */
function statusJson(task: TaskRecord | PlainTaskRecord) {
  if ('plain' in task)
    throw new NotOffered('The database keeps only the original task records ({id, state}): there is no status to show; use /isReady.', '/status')
  return {
    id: task.id,
    state: task.state,
    stateName: task.stateName,
    attempts: task.attempts,
    ...(task.error !== undefined ? { error: task.error } : {}),
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
  }
}

export function readRoutes(deps: ReadRouteDeps) {
  const { database, storage, states, waits, access, reads, everyones } = deps
  const keyHashOf = (task: TaskRecord | PlainTaskRecord) => ('plain' in task ? undefined : task.keyHash)
  /** The task, if `reader` may see it; the same NotFound for an unknown id and for a task it may not see. */
  const readTask = async (id: number, reader: ReadAccess | undefined): Promise<TaskRecord | PlainTaskRecord> => {
    const task = await database.getById(id)
    if (!access.allows(reader, keyHashOf(task))) throw unknownTask(id)
    return task
  }
  /**
   * Whether the task is finished (NotFound for an unknown one, or one `reader` may not see), from a recent sighting when
   * there is one and it lets `reader` in; otherwise from the database, so that a wrong key costs what an unknown id does.
   */
  const isFinished = async (id: number, reader: ReadAccess | undefined): Promise<boolean> => {
    const known = states.get(id)
    if (known !== undefined && access.allows(reader, known.keyHash)) return known.state === 2
    const task = await readTask(id, reader)
    states.set(id, task.state, keyHashOf(task))
    return task.state === 2
  }
  return new Elysia()
    .use(accessMacro())
    .get('/isReady', async ({ query, request }) => ((await isFinished(Number(query.id), access.of(request, query.key))) ? '1' : '0'), {
      access: reads,
      query: KeyedIdQuery,
      response: { 200: t.Union([t.Literal('0'), t.Literal('1')]), 404: ErrorText },
      detail: { summary: '`1` when the task is finished, else `0` (also for a failed task; see /status)', tags: ['client'] },
    })
    .get(
      '/get',
      async ({ query, request }) => {
        const id = Number(query.id)
        if (!(await isFinished(id, access.of(request, query.key)))) throw new NotFound(`Task ${id} is not finished.`)
        const stored = await storage.get(id, 'finished', { headers: pickHeaders(request.headers, IMAGE_REQUEST_HEADERS) })
        // Bun keeps the Content-Length of a streamed body only when the stream has arrived whole by the time it answers; a
        // larger image goes out chunked (oven-sh/bun#10507).
        return new Response(stored.body, { status: stored.status, headers: pickHeaders(stored.headers, IMAGE_ANSWER_HEADERS) })
      },
      {
        access: reads,
        query: KeyedIdQuery,
        // The PNG answer is declared in `detail.responses`: a `response` schema would replace it with JSON.
        detail: {
          summary: 'The finished PNG; 404 while the task is not finished',
          tags: ['client'],
          responses: { 200: pngResponse, 404: { description: 'Unknown or unfinished task', content: { 'text/plain': { schema: { type: 'string' } } } } },
        },
      },
    )
    .get('/status', async ({ query, request }) => statusJson(await readTask(Number(query.id), access.of(request, query.key))), {
      access: reads,
      query: KeyedIdQuery,
      response: { 200: StatusJson, 404: ErrorText },
      detail: { summary: 'The task’s state, attempts and last error', tags: ['client'] },
    })
    .get(
      '/wait',
      async ({ query, request }) => {
        const reader = access.of(request, query.key)
        const allowed = reader === undefined ? undefined : (record: TaskRecord) => access.allows(reader, record.keyHash)
        return statusJson(await waits.wait(Number(query.id), Number(query.timeout ?? 30) * 1000, request.signal, allowed))
      },
      {
        access: reads,
        query: KeyedWaitQuery,
        response: { 200: StatusJson, 400: ErrorText, 404: ErrorText },
        detail: {
          summary: 'The task’s status as soon as it is finished or failed, or after `timeout` seconds as it is then',
          description:
            'Answers with the same JSON as `/status`: at once for a task that has ended, else when it ends, else after `timeout` ' +
            '(1-60 s, default 30) with its state then (200; ask again). All the waits of a master share one poll of the database.',
          tags: ['client'],
        },
      },
    )
    .get(
      '/tasks',
      async ({ query }) =>
        (
          await database.recentTasks({
            state: query.state === undefined ? undefined : Number(query.state),
            limit: query.limit === undefined ? undefined : Number(query.limit),
            before: query.before === undefined ? undefined : Number(query.before),
          })
        ).map(statusJson),
      {
        access: everyones,
        query: RecentQuery,
        response: { 200: t.Array(StatusJson), 400: ErrorText },
        detail: {
          summary: 'The newest tasks, newest first, optionally in one state (limit 1-200, default 50)',
          description: '`before=<id>`: only tasks with a smaller id; pass the last id of a page to get the next, which new uploads do not move.',
          tags: ['operators'],
        },
      },
    )
}
