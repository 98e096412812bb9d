// The operator's console on the frontend: the charts' figures and the board's live feed, the task list, a task's page
// with its images, and an operator's actions from plain forms.
import { Elysia, t } from 'elysia'
import type { MasterPublicClient } from '../../clients/master-public-client.ts'
import { type Access, accessMacro } from '../../plugins/access.ts'
import { operatorMatches, tokenDigest } from '../../plugins/auth.ts'
import { HttpError, NotOffered } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { IMAGE_ANSWER_HEADERS, pickHeaders } from '../../shared/wire/headers.ts'
import { ErrorText, IdString } from '../../shared/wire/params.ts'
import type { BoardFeed } from './board-feed.ts'
import { chartData } from './chart-data.ts'
import { PAGE_SIZE, renderTaskConsolePage, renderTaskList, renderUnknownConsoleTask } from './console-pages.ts'
import type { ConsoleSource, HistoryWindow } from './console-source.ts'
import { eventStream, sseFrame } from './event-stream.ts'
import { PAGE_SECURITY_HEADERS } from './static-pages.ts'
import type { WorkerDirectory } from './worker-directory.ts'

export interface ConsoleDeps {
  readonly master: Pick<MasterPublicClient, 'retry' | 'deleteTask'>
  readonly source: ConsoleSource
  readonly feed: BoardFeed
  /** An image of a task from storage (`working` or `finished`), as storage answers it. */
  readonly image: (id: number, area: 'working' | 'finished') => Promise<Response>
  readonly workers?: WorkerDirectory
  /** PIXMILL_TOKEN: the forms' actions want it. */
  readonly token?: string
  /** PIXMILL_PRIVATE_RESULTS: the pages and feeds list everyone's tasks, so they are for operators. Default false. */
  readonly privateResults?: boolean
  readonly log: Logger
}

const HTML = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...PAGE_SECURITY_HEADERS }
const html = (text: string, status = 200) => new Response(text, { status, headers: HTML })
const isNotFound = (error: unknown) => error instanceof HttpError && error.status === 404

const WindowQuery = t.Object({
  window: t.Optional(
    t.Union([t.Literal('hour'), t.Literal('day')], {
      error: 'window must be hour or day',
      description: 'The charts’ span: the last hour (by minute) or day (by 15 minutes)',
    }),
  ),
})
const StateParam = t.String({ pattern: '^[0-3]$', error: 'state must be 0, 1, 2 or 3', description: '0 waiting, 1 processing, 2 finished, 3 failed' })
const ListQuery = t.Object({
  state: t.Optional(t.Union([StateParam, t.Literal('')])),
  before: t.Optional(IdString),
  limit: t.Optional(t.String({ pattern: '^([1-9]|[1-9][0-9]|1[0-9][0-9]|200)$', error: 'limit must be 1 to 200' })),
  deleted: t.Optional(IdString),
})
const ActionBody = t.Object({
  id: IdString,
  token: t.Optional(t.String({ maxLength: 1024 })),
  confirm: t.Optional(t.String({ maxLength: 16 })),
})

export function consoleRoutes(deps: ConsoleDeps) {
  const { source, feed, log } = deps
  const feeds: Access = deps.privateResults ? 'internal' : 'public'
  // A person opens these: refused with the Basic challenge, so the browser asks for the token.
  const pages: Access = deps.privateResults ? 'operator-page' : 'public'
  const expected = deps.token === undefined ? undefined : tokenDigest(deps.token)
  /** The form's token, or the caller's Authorization (Bearer, or Basic with the token as the password). */
  const operator = (request: Request, formToken: string | undefined) =>
    expected === undefined || operatorMatches(request.headers.get('authorization'), expected) || operatorMatches(`Bearer ${formToken ?? ''}`, expected)

  async function taskPage(id: number, message?: { ok: boolean; text: string }, status = 200): Promise<Response> {
    let task: Awaited<ReturnType<ConsoleSource['status']>>
    try {
      task = await source.status(id)
    } catch (error) {
      if (isNotFound(error)) return html(renderUnknownConsoleTask(id), 404)
      throw error
    }
    const events = await source.events(id).catch((error) => {
      if (error instanceof NotOffered || isNotFound(error)) return undefined
      throw error
    })
    return html(renderTaskConsolePage({ task, events, tokenNeeded: expected !== undefined, message }), status)
  }

  /** An action from a form: refused (401) without the token, told on the task's page either way. */
  async function act(
    request: Request,
    body: { id: string; token?: string },
    run: (id: number) => Promise<void>,
    done: (id: number) => string,
  ): Promise<Response> {
    const id = Number(body.id)
    if (!operator(request, body.token)) return taskPage(id, { ok: false, text: 'The operator token is missing or wrong.' }, 401)
    try {
      await run(id)
    } catch (error) {
      if (error instanceof HttpError && error.status < 500) return taskPage(id, { ok: false, text: error.message }, error.status)
      throw error
    }
    return new Response(null, { status: 303, headers: { location: done(id) } })
  }

  return new Elysia({ name: 'pixmill.frontend.console' })
    .use(accessMacro())
    .get('/api/history', ({ query }) => chartData(query.window ?? 'hour', source, deps.workers), {
      access: feeds,
      query: WindowQuery,
      detail: { summary: 'The charts’ figures: tasks per minute, the queue, processing time, images per second per worker', tags: ['operators'] },
    })
    .get(
      '/api/board/events',
      ({ query, request, server }) =>
        eventStream({
          request,
          server,
          start: (write, end) =>
            feed.subscribe((query.window ?? 'hour') as HistoryWindow, (event) => {
              if (event.type === 'closing') return end()
              write(event.type === 'trouble' ? sseFrame('trouble', { message: event.message }) : sseFrame(event.type, event.data))
            }),
        }),
      {
        access: feeds,
        query: WindowQuery,
        detail: {
          summary: 'The board live (server-sent events): `board` (as /api/board) every 3 s, `history` (as /api/history) every 15 s',
          tags: ['operators'],
        },
      },
    )
    .get(
      '/board/tasks',
      async ({ query }) => {
        const state = query.state === undefined || query.state === '' ? undefined : Number(query.state)
        const before = query.before === undefined ? undefined : Number(query.before)
        const limit = query.limit === undefined ? PAGE_SIZE : Number(query.limit)
        const message = query.deleted === undefined ? undefined : `Task ${query.deleted} is deleted, with both its images.`
        try {
          return html(renderTaskList({ tasks: await source.tasks({ state, before, limit }), state, before, limit, message }))
        } catch (error) {
          if (!(error instanceof NotOffered)) throw error
          return html(renderTaskList({ tasks: [], state, before, limit, unavailable: 'The master offers no task list: it knows only the original endpoints.' }))
        }
      },
      {
        access: pages,
        query: ListQuery,
        detail: { summary: 'The task list (HTML), newest first: by state, in pages that stay put as tasks come in', tags: ['page'] },
      },
    )
    .get(
      '/board/task',
      ({ query }) => {
        const done = query.done === 'retried' ? { ok: true, text: `Task ${query.id} is queued again.` } : undefined
        return taskPage(Number(query.id), done)
      },
      {
        access: pages,
        query: t.Object({ id: IdString, done: t.Optional(t.String({ maxLength: 16 })) }),
        detail: { summary: 'One task for operators (HTML): its timeline, both images, retry and delete', tags: ['page'] },
      },
    )
    .get(
      '/board/image',
      async ({ query }) => {
        const answer = await deps.image(Number(query.id), query.area)
        return new Response(answer.body, {
          status: answer.status,
          headers: { ...pickHeaders(answer.headers, IMAGE_ANSWER_HEADERS), 'x-content-type-options': 'nosniff' },
        })
      },
      {
        access: pages,
        query: t.Object({ id: IdString, area: t.Union([t.Literal('working'), t.Literal('finished')], { error: 'area must be working or finished' }) }),
        response: { 404: ErrorText },
        detail: { summary: 'A task’s uploaded or processed image, for its page', tags: ['page'] },
      },
    )
    .post(
      '/board/task/retry',
      ({ body, request }) =>
        act(
          request,
          body,
          async (id) => {
            await deps.master.retry(id)
            log.info({ id }, 'failed task put back for another try from its console page')
          },
          (id) => `/board/task?id=${id}&done=retried`,
        ),
      // A browser form cannot send a bearer header: `act` checks the token from the form (or the header) itself.
      { access: 'form', body: ActionBody, detail: { summary: 'Try a failed task again, from a form (the token in the form when one is set)', tags: ['page'] } },
    )
    .post(
      '/board/task/delete',
      ({ body, request }) => {
        if (body.confirm !== 'yes') throw new HttpError(400, 'Deleting needs the box ticked that says so (confirm=yes).')
        return act(
          request,
          body,
          async (id) => {
            await deps.master.deleteTask(id)
            log.info({ id }, 'task deleted from its console page')
          },
          (id) => `/board/tasks?deleted=${id}`,
        )
      },
      { access: 'form', body: ActionBody, detail: { summary: 'Delete a finished or failed task with its images, from a form', tags: ['page'] } },
    )
}
