// The database's routes behind an operator's console: a task's timeline and the history of the charts.
import { Elysia } from 'elysia'
import { BadRequest, NotFound } from '../../shared/errors.ts'
import { ErrorText, IdQuery } from '../../shared/wire/params.ts'
import { bucketCount, historyBuckets, MAX_BUCKETS } from './history.ts'
import { HistoryJson, HistoryQuery, historyJson, TaskEventsJson, taskEventJson } from './model.ts'
import type { TaskStore } from './task-store.ts'

/** Routes of the database app for `/events` and `/history` (internal, as every database route). */
export function consoleRoutes(store: TaskStore, now: () => number) {
  return new Elysia()
    .get(
      '/events',
      async ({ query }) => {
        const events = await store.events(Number(query.id))
        if (!events) throw new NotFound(`No task with id ${query.id}.`)
        return events.map(taskEventJson)
      },
      {
        query: IdQuery,
        response: { 200: TaskEventsJson, 400: ErrorText, 404: ErrorText },
        detail: {
          summary: 'A task’s timeline, oldest first',
          description:
            'created, claimed (with the attempt), finished (with its processing time `ms`), failed (with the error, and `forGood`), ' +
            'lease_expired (a failed attempt too), released, retried. Each is recorded with the change it describes and goes with the task.',
          tags: ['beyond'],
        },
      },
    )
    .get(
      '/history',
      async ({ query }) => {
        const step = Number(query.step)
        if (step % 60_000 !== 0) throw new BadRequest('step must be a multiple of 60000 (a minute).')
        const t = now()
        // Figures are kept per minute: buckets start on a minute.
        const since = Number(query.since) - (Number(query.since) % 60_000)
        if (since > t) throw new BadRequest('since must not be in the future.')
        if (bucketCount(since, step, t) > MAX_BUCKETS)
          throw new BadRequest(`From since to now that is more than ${MAX_BUCKETS} buckets of step ms; take a larger step or a later since.`)
        const { minutes, samples } = await store.figures({ from: since, to: t })
        return historyJson(since, step, historyBuckets({ since, step, now: t, minutes, samples }))
      },
      {
        query: HistoryQuery,
        response: { 200: HistoryJson, 400: ErrorText },
        detail: {
          summary: 'Tasks created, finished and failed, processing time and the queue’s depth, in buckets of `step` ms from `since` to now',
          description:
            'Read from figures kept per minute as events are recorded (no task is read), kept 48 hours. `step`: a multiple of 60000; ' +
            `at most ${MAX_BUCKETS} buckets. The queue's depth is sampled every 15 s; a bucket shows its last sample, or null.`,
          tags: ['beyond'],
        },
      },
    )
}
