// The database's routes of a task's life from creation to its end: create, read, claim, finish, fail, retry, give back
// and renew (the original protocol's and those beyond it that a worker or the master calls).
import { Elysia, t } from 'elysia'
import { NotFound } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { currentRequestId } from '../../shared/request-context.ts'
import { acceptedTraceparent } from '../../shared/trace-context.ts'
import { ClaimQuery, ErrorText, IdQuery, Success } from '../../shared/wire/params.ts'
import type { ClaimWaits } from './claim-waits.ts'
import { ClaimJson, FailQuery, IdLeaseQuery, IdsQuery, RenewQuery, SetByIdBody, TaskJson, TaskRecordJson, taskJson, taskRecordJson } from './model.ts'
import type { CountEvent } from './task-metrics.ts'
import type { TaskStore } from './task-store.ts'

const NO_TASK = 'No non-started task.'

export interface LifecycleRoutesDeps {
  readonly store: TaskStore
  /** Told of every change that can make a task claimable, so that a held claim is answered at once. */
  readonly claimWaits: ClaimWaits
  readonly count: CountEvent
  readonly log: Logger
}

/** Routes of the database app from `/newTask` to `/renewTask` (internal, as every database route). */
export function lifecycleRoutes({ store, claimWaits, count, log }: LifecycleRoutesDeps) {
  return new Elysia()
    .post(
      '/newTask',
      async ({ request }) => {
        const id = await store.create({ requestId: currentRequestId(), traceParent: acceptedTraceparent(request.headers.get('traceparent')) })
        count('created')
        claimWaits.notify()
        return String(id)
      },
      {
        response: { 200: t.String({ description: 'The new task id, as text' }) },
        detail: { summary: 'Create a task (state 0), claimable at once', tags: ['original'] },
      },
    )
    .get(
      '/getById',
      async ({ query }) => {
        const task = await store.get(Number(query.id))
        if (!task) throw new NotFound(`No task with id ${query.id}.`)
        return taskRecordJson(task)
      },
      {
        query: IdQuery,
        response: { 200: TaskRecordJson, 404: ErrorText },
        detail: { summary: 'A task as JSON (with `keyHash` when its result is private)', tags: ['original'] },
      },
    )
    .get('/getByIds', async ({ query }) => (await store.getMany(query.ids.split(',').map(Number))).map(taskRecordJson), {
      query: IdsQuery,
      response: { 200: t.Array(TaskRecordJson) },
      detail: { summary: 'Several tasks at once (unknown ids left out): the master’s one poll behind all its `/wait` calls', tags: ['beyond'] },
    })
    .post(
      '/getNewTask',
      async ({ query, request, set }) => {
        let { claim } = await claimWaits.claim(Number(query.wait ?? 0) * 1000, request.signal)
        if (claim && request.signal.aborted) {
          // The caller went away while its claim was made: nobody would work on it, so it goes back at once (the
          // answer below reaches nobody).
          await store.release(claim.task.id, claim.leaseToken).catch(() => {})
          claimWaits.notify()
          claim = undefined
        }
        if (!claim) {
          set.status = 404
          set.headers['content-type'] = 'text/plain; charset=utf-8'
          return `Error: ${NO_TASK}`
        }
        count('claimed')
        log.info({ id: claim.task.id, attempts: claim.task.attempts }, 'task claimed')
        return {
          ...taskJson(claim.task),
          leaseToken: claim.leaseToken,
          ...(claim.task.requestId !== null ? { requestId: claim.task.requestId } : {}),
          ...(claim.task.traceParent !== null ? { traceparent: claim.task.traceParent } : {}),
        }
      },
      {
        query: ClaimQuery,
        response: { 200: ClaimJson, 404: ErrorText },
        detail: {
          summary: 'Claim the oldest not-started task (now state 1, with a lease)',
          description:
            `Answers \`Error: ${NO_TASK}\` (404) when there is none. With \`wait=S\` the call is held until a task can be ` +
            'claimed (answered at once when one is created, activated, released, failed back or retried) or S seconds pass.',
          tags: ['original'],
        },
      },
    )
    .post(
      '/finishTask',
      async ({ query }) => {
        await store.finish(Number(query.id), query.lease)
        count('finished')
        log.info({ id: Number(query.id) }, 'task finished')
        return 'success' as const
      },
      {
        query: IdLeaseQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Finish a task in progress (409 for any other state)', tags: ['original'] },
      },
    )
    .post(
      '/setById',
      async ({ body }) => {
        await store.setState(body.id, body.state)
        if (body.state === 0) claimWaits.notify()
        return 'success' as const
      },
      {
        parse: 'json',
        body: SetByIdBody,
        response: { 200: Success, 400: ErrorText, 404: ErrorText },
        detail: { summary: 'Set the state (0, 1 or 2) of an existing task from a JSON task', tags: ['original'] },
      },
    )
    .get(
      '/list',
      async function* () {
        for await (const task of store.list()) yield `${JSON.stringify(taskJson(task))}\n`
      },
      { detail: { summary: 'Every task, one JSON line each', tags: ['original'] } },
    )
    .post(
      '/failTask',
      async ({ query }) => {
        const task = await store.fail(Number(query.id), query.error, query.lease)
        count(task.state === 3 ? 'failed_for_good' : 'failed')
        if (task.state === 0) claimWaits.notify()
        log.info({ id: task.id, attempts: task.attempts, state: task.state, reason: query.error }, 'task failed')
        return 'success' as const
      },
      {
        query: FailQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Count a failed attempt: back to state 0, or 3 (failed) at PIXMILL_MAX_ATTEMPTS', tags: ['beyond'] },
      },
    )
    .post(
      '/retryTask',
      async ({ query }) => {
        await store.retry(Number(query.id))
        count('retried')
        claimWaits.notify()
        return 'success' as const
      },
      {
        query: IdQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'A failed task (state 3) goes back to 0 with its attempts cleared', tags: ['beyond'] },
      },
    )
    .post(
      '/releaseTask',
      async ({ query }) => {
        await store.release(Number(query.id), query.lease)
        count('released')
        claimWaits.notify()
        return 'success' as const
      },
      {
        query: IdLeaseQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Give a claim back at once (a worker shutting down); no attempt is counted', tags: ['beyond'] },
      },
    )
    .post('/renewTask', async ({ query }) => taskJson(await store.renew(Number(query.id), query.lease)), {
      query: RenewQuery,
      response: { 200: TaskJson, 404: ErrorText, 409: ErrorText },
      detail: { summary: 'Extend the lease of a claim', tags: ['beyond'] },
    })
}
