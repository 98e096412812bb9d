// The master's routes behind an operator's console: a task's timeline and the charts' history, from the database.
import { Elysia } from 'elysia'
import type { DatabaseClient } from '../../clients/database-client.ts'
import { type Access, accessMacro } from '../../plugins/access.ts'
import { ErrorText, IdQuery } from '../../shared/wire/params.ts'
import { HistoryJson, type HistoryWindow, HistoryWindowQuery, TaskEventsJson } from '../../shared/wire/tasks.ts'

/** Bucket length and number of buckets of each window: an hour by minute, a day by quarter of an hour. */
const WINDOWS: Record<HistoryWindow, { step: number; buckets: number }> = {
  hour: { step: 60_000, buckets: 60 },
  day: { step: 15 * 60_000, buckets: 96 },
}

/**
 * `/events` (its access `timelines`) and `/history` (open) of the master app. Over an original database (no such routes) both answer 501, as the other
 * routes beyond the original protocol do. `now`: epoch ms.
 */
export function consoleRoutes(database: DatabaseClient, now: () => number, timelines: Access) {
  return new Elysia()
    .use(accessMacro())
    .get('/events', async ({ query }) => database.events(Number(query.id)), {
      access: timelines,
      query: IdQuery,
      response: { 200: TaskEventsJson, 400: ErrorText, 404: ErrorText },
      detail: {
        summary:
          'A task’s timeline, oldest first: created, claimed, failed (with the error), lease_expired, released, retried, finished (with its processing time)',
        description: 'With PIXMILL_PRIVATE_RESULTS it is for operators (the token), as `/tasks` is. `404` for an unknown id.',
        tags: ['operators'],
      },
    })
    .get(
      '/history',
      async ({ query }) => {
        const { step, buckets } = WINDOWS[query.window ?? 'hour']
        // Whole buckets, the current one last.
        const t = now()
        return database.history({ since: t - (t % step) - (buckets - 1) * step, step })
      },
      {
        access: 'public',
        query: HistoryWindowQuery,
        response: { 200: HistoryJson, 400: ErrorText },
        detail: {
          summary: 'Tasks created, finished and failed, processing time (median, 95th percentile) and the queue’s depth over the last hour or day',
          description:
            '`window=hour` (default): 60 buckets of a minute, the current one last; `window=day`: 96 buckets of 15 minutes. Kept by the ' +
            'database as events happen (no task is read); the queue’s depth is sampled every 15 s, null where no sample was taken.',
          tags: ['operators'],
        },
      },
    )
}
