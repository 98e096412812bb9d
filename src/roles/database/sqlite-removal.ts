// The removal side of the SQLite task store: a held task dropped, a task marked for removal, the sweep's deletes.
import type { Database } from 'bun:sqlite'
import { Conflict, NotFound } from '../../shared/errors.ts'
import type { Statements } from './sqlite-statements.ts'
import { REMOVAL_LEASE_MS } from './task-store.ts'

/** The removal transactions; `forget` drops a task from the store's kept rows before it changes. */
export function removalTransactions(db: Database, q: Statements, forget: (id: number) => void, now: () => number) {
  const drop = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || (row.ready === 0 && row.removing_until !== null)) throw new NotFound(`No task with id ${id}.`)
    if (row.ready === 1) throw new Conflict(`Cannot drop task ${id}: it is not held for an upload.`)
    forget(id)
    q.drop.run(id, now())
  })

  const markOne = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || row.ready === 0) throw new NotFound(`No task with id ${id}.`)
    if (row.removing_until === null && row.state < 2) {
      throw new Conflict(`Cannot delete task ${id}: it is ${row.state === 0 ? 'waiting' : 'in progress'}; only a finished or failed task can be deleted.`)
    }
    forget(id)
    q.markOne.run(id, now() + REMOVAL_LEASE_MS)
  })

  const releaseRemoval = db.transaction((ids: readonly number[], t: number) => {
    for (const id of ids) q.releaseRemoval.run(id, t)
  })
  const removeMarked = db.transaction((ids: readonly number[]): number =>
    ids.reduce((n, id) => {
      forget(id)
      return n + q.remove.run(id).changes
    }, 0),
  )

  return { drop, markOne, releaseRemoval, removeMarked }
}
