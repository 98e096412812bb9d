// Removal in the PostgreSQL task store: tasks are marked (out of sight, under a removal lease) before their images go,
// then their rows and timelines are deleted.
import { Conflict, NotFound } from '../../shared/errors.ts'
import { anyRow, type StoreContext } from './postgres-rows.ts'
import { REMOVAL_LEASE_MS, type TaskStore } from './task-store.ts'

/** The store's removal operations (see TaskStore). */
export function removalStatements({
  sql,
  now,
  guardedWrite,
  freshWrite,
}: StoreContext): Pick<TaskStore, 'markForRemoval' | 'markOneForRemoval' | 'releaseRemoval' | 'removeMarked'> {
  return {
    markForRemoval: ({ endedBefore, heldBefore, limit }) =>
      freshWrite(async (t) => {
        // Three index scans, each bounded; SKIP LOCKED: instances sweeping at once take different tasks.
        const rows = await sql<{ id: string }[]>`
          WITH ended AS (
            SELECT id FROM pixmill_tasks WHERE state >= 2 AND ready AND removing_until IS NULL AND updated_at <= ${endedBefore ?? null}
            ORDER BY updated_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
          ), held AS (
            SELECT id FROM pixmill_tasks WHERE NOT ready AND removing_until IS NULL AND created_at <= ${heldBefore}
            LIMIT ${limit} FOR UPDATE SKIP LOCKED
          ), stalled AS (
            SELECT id FROM pixmill_tasks WHERE removing_until <= ${t} LIMIT ${limit} FOR UPDATE SKIP LOCKED
          )
          UPDATE pixmill_tasks SET removing_until = ${t + REMOVAL_LEASE_MS}
          WHERE id IN (SELECT id FROM ended UNION SELECT id FROM held UNION SELECT id FROM stalled)
          RETURNING id`
        return rows.map((r) => Number(r.id)).sort((a, b) => a - b)
      }),
    markOneForRemoval: (id) =>
      freshWrite(async (t) => {
        const rows = await sql`
          UPDATE pixmill_tasks SET removing_until = ${t + REMOVAL_LEASE_MS}
          WHERE id = ${id} AND ready AND (state >= 2 OR removing_until IS NOT NULL) RETURNING id`
        if (rows.length > 0) return
        const found = await anyRow(sql, id)
        if (!found?.ready) throw new NotFound(`No task with id ${id}.`)
        throw new Conflict(`Cannot delete task ${id}: it is ${found.state === 0 ? 'waiting' : 'in progress'}; only a finished or failed task can be deleted.`)
      }),
    releaseRemoval: (ids) =>
      guardedWrite(async () => {
        const t = now()
        if (ids.length > 0) await sql`UPDATE pixmill_tasks SET removing_until = ${t} WHERE id IN ${sql(ids as number[])} AND removing_until > ${t}`
      }),
    removeMarked: (ids) =>
      guardedWrite(async () => {
        if (ids.length === 0) return 0
        const rows = await sql`
          WITH gone AS (DELETE FROM pixmill_tasks WHERE id IN ${sql(ids as number[])} AND removing_until IS NOT NULL RETURNING id),
          timelines AS (DELETE FROM pixmill_task_events WHERE task_id IN (SELECT id FROM gone))
          SELECT id FROM gone`
        return rows.length
      }),
  }
}
