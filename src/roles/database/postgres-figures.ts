// The PostgreSQL task store's reads for an operator's console: a task's timeline, the per-minute figures and the
// queue's samples (and taking them).
import type { LeaseExpiry } from './postgres-leases.ts'
import type { StoreContext } from './postgres-rows.ts'
import { type EventRow, PROCESSING_COLUMNS, timeline } from './task-events.ts'
import { FIGURES_KEPT_MS, type MinuteFigures, type TaskState, type TaskStore } from './task-store.ts'

/** The per-minute figures of a minute, added up over its shards. */
const MINUTES = `
  SELECT minute, sum(created)::int AS created, sum(finished)::int AS finished, sum(failed)::int AS failed,
    sum(failed_for_good)::int AS failed_for_good, ${PROCESSING_COLUMNS.map((c) => `sum(${c})::int AS ${c}`).join(', ')}
  FROM pixmill_task_minutes WHERE minute BETWEEN $1 AND $2 GROUP BY minute ORDER BY minute`

/** The store's timeline and figures operations; `countByState` is the store's own (with its shared count). */
export function timelineAndFigures(
  { sql, now, guarded }: StoreContext,
  leases: LeaseExpiry,
  countByState: TaskStore['countByState'],
): Pick<TaskStore, 'events' | 'figures' | 'sampleQueue'> {
  return {
    events: (id) =>
      guarded(async () => {
        const t = now()
        const read = () =>
          sql<(EventRow & { state: TaskState; lease_until: string | null; created_at: string; seq: string | null })[]>`
            SELECT task.state, task.lease_until, task.created_at, e.seq, e.at, e.event, e.attempt, e.error, e.for_good, e.ms
            FROM pixmill_tasks AS task LEFT JOIN pixmill_task_events AS e ON e.task_id = task.id
            WHERE task.id = ${id} AND task.ready AND task.removing_until IS NULL ORDER BY e.seq`
        let rows = await read()
        // As get(): a task in progress past its lease shows the expiry first.
        if (rows[0] && rows[0].state === 1 && rows[0].lease_until !== null && Number(rows[0].lease_until) <= t) {
          await leases.expireLeases(t)
          rows = await read()
        }
        if (!rows[0]) return undefined
        return timeline(
          rows.filter((r) => r.seq !== null),
          Number(rows[0].created_at),
        )
      }),
    figures: ({ from, to }) =>
      guarded(async () => {
        const [minutes, samples] = await Promise.all([
          sql.unsafe<({ minute: string } & Record<string, number>)[]>(MINUTES, [from, to]),
          sql<{ minute: string; at: string; waiting: number; in_progress: number }[]>`
            SELECT * FROM pixmill_queue_samples WHERE minute BETWEEN ${from} AND ${to} ORDER BY minute`,
        ])
        return {
          minutes: minutes.map(
            (row): MinuteFigures => ({
              minute: Number(row.minute),
              created: row.created!,
              finished: row.finished!,
              failed: row.failed!,
              failedForGood: row.failed_for_good!,
              processing: PROCESSING_COLUMNS.map((c) => row[c]!),
            }),
          ),
          samples: samples.map((row) => ({ minute: Number(row.minute), at: Number(row.at), waiting: row.waiting, inProgress: row.in_progress })),
        }
      }),
    async sampleQueue() {
      // The shared count (countsCacheMs) serves this too: a sample a second old is as good.
      const counts = await countByState()
      await guarded(async () => {
        const t = now()
        const cutoff = t - FIGURES_KEPT_MS
        // Instances sharing the database sample the same minute: the latest sample stays.
        await sql`
          WITH old_minutes AS (DELETE FROM pixmill_task_minutes WHERE minute < ${cutoff}),
          old_samples AS (DELETE FROM pixmill_queue_samples WHERE minute < ${cutoff})
          INSERT INTO pixmill_queue_samples AS s (minute, at, waiting, in_progress) VALUES (${t - (t % 60_000)}, ${t}, ${counts[0]}, ${counts[1]})
          ON CONFLICT (minute) DO UPDATE SET at = EXCLUDED.at, waiting = EXCLUDED.waiting, in_progress = EXCLUDED.in_progress WHERE EXCLUDED.at >= s.at`
      })
    },
  }
}
