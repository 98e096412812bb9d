// The master's worker API: claim a task, report it finished or failed, renew or give back the lease.
import { Elysia, t } from 'elysia'
import type { DatabaseClient } from '../../clients/database-client.ts'
import { accessMacro } from '../../plugins/access.ts'
import type { Counter, Histogram } from '../../shared/prom.ts'
import { ClaimQuery, ErrorText, Success } from '../../shared/wire/params.ts'
import { FailedQuery, FinishedQuery, LeaseQuery, RenewQuery } from './model.ts'
import type { TaskStates } from './task-states.ts'
import type { TaskWaits } from './task-waits.ts'

export interface WorkerRouteDeps {
  readonly database: DatabaseClient
  readonly states: TaskStates
  readonly waits: TaskWaits
  /** The master's task events, by `event`. */
  readonly events: Counter<'event'>
  /** Claim-to-finish seconds, as the workers report them. */
  readonly processing: Histogram
}

/** The worker API; internal, as every route that declares no `access`. */
export function workerRoutes(deps: WorkerRouteDeps) {
  const { database, states, waits, events, processing } = deps
  return new Elysia()
    .use(accessMacro())
    .post(
      '/getNewTask',
      async ({ query, request, set }) => {
        // A worker gone away (closing) ends the wait at the database too, which then gives back a claim made meanwhile.
        const claim = await database.getNewTask({ waitSeconds: Number(query.wait ?? 0), signal: request.signal })
        events.inc({ event: 'claimed' })
        set.headers['content-type'] = 'application/json; charset=utf-8'
        return claim
      },
      {
        query: ClaimQuery,
        response: { 200: t.String({ description: 'The claimed task as JSON, with `leaseToken`' }), 404: ErrorText },
        detail: {
          summary: 'Claim the oldest not-started task (worker API)',
          description:
            'Answers `Error: No non-started task.` (404) when there is none. With `wait=S` (0-60) the call is held until a task can ' +
            'be claimed or S seconds pass, so that an idle worker hears of a new task at once instead of polling.',
          tags: ['worker'],
        },
      },
    )
    .post(
      '/registerTaskFinished',
      async ({ query }) => {
        await database.finishTask(Number(query.id), query.lease)
        states.forget(Number(query.id))
        waits.changed(Number(query.id))
        events.inc({ event: 'finished' })
        if (query.ms !== undefined) processing.observe(Number(query.ms) / 1000)
        return 'success' as const
      },
      {
        query: FinishedQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Mark a task in progress finished (worker API)', tags: ['worker'] },
      },
    )
    .post(
      '/registerTaskFailed',
      async ({ query }) => {
        states.forget(Number(query.id))
        await database.failTask(Number(query.id), query.error, query.lease)
        waits.changed(Number(query.id))
        events.inc({ event: 'failed' })
        return 'success' as const
      },
      {
        query: FailedQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Count a failed attempt (worker API)', tags: ['worker'] },
      },
    )
    .post(
      '/renewTask',
      async ({ query, set }) => {
        const renewed = await database.renewTask(Number(query.id), query.lease)
        set.headers['content-type'] = 'application/json; charset=utf-8'
        return renewed
      },
      {
        query: RenewQuery,
        response: { 200: t.String(), 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Extend the lease of a claim (worker API)', tags: ['worker'] },
      },
    )
    .post(
      '/releaseTask',
      async ({ query }) => {
        states.forget(Number(query.id))
        await database.releaseTask(Number(query.id), query.lease)
        events.inc({ event: 'released' })
        return 'success' as const
      },
      {
        query: LeaseQuery,
        response: { 200: Success, 404: ErrorText, 409: ErrorText },
        detail: { summary: 'Give a claim back at once, no attempt counted (worker API, on shutdown)', tags: ['worker'] },
      },
    )
}
