// The embedded task store (bun:sqlite) against the TaskStore contract.
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import type { TaskStoreOptions } from '../../src/roles/database/task-store.ts'
import { taskHistoryContract } from '../helpers/task-history-contract.ts'
import { taskStoreContract } from '../helpers/task-store-contract.ts'
import { tempDir } from '../helpers/temp.ts'

const sqliteEnv = () => {
  const dir = tempDir()
  return { open: (options: TaskStoreOptions) => openSqliteTaskStore(join(dir.path, 'database'), options), cleanup: dir.remove }
}
taskStoreContract('bun:sqlite', sqliteEnv)
taskHistoryContract('bun:sqlite', sqliteEnv)

describe('bun:sqlite task store: a file of an earlier version', () => {
  test('gets the removal column and the counts table on open, counted from its rows; its tasks read as before', async () => {
    const dir = tempDir()
    try {
      const folder = join(dir.path, 'database')
      mkdirSync(folder, { recursive: true })
      // The first release's schema, with tasks in every state and one held.
      const old = new Database(join(folder, 'tasks.sqlite'), { create: true })
      old.exec(`
        CREATE TABLE tasks (id INTEGER PRIMARY KEY, state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
          created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, lease_until INTEGER, lease_token TEXT, ready INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE sequence (name TEXT PRIMARY KEY, next INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO sequence VALUES ('tasks', 6);
        INSERT INTO tasks (id, state, created_at, updated_at, ready) VALUES (0, 2, 1, 1, 1), (1, 2, 1, 1, 1), (2, 3, 1, 1, 1), (3, 0, 1, 1, 1), (4, 0, 1, 1, 0);
      `)
      old.close()
      const store = openSqliteTaskStore(folder, { leaseSeconds: 60, maxAttempts: 3 })
      expect(await store.countByState()).toEqual({ 0: 1, 1: 0, 2: 2, 3: 1 })
      expect((await store.get(2))?.state).toBe(3)
      expect(await store.get(4)).toBeUndefined()
      expect(await store.create()).toBe(6)
      expect(await store.countByState()).toEqual({ 0: 2, 1: 0, 2: 2, 3: 1 })
      // The key column came with the others: the old tasks have no key, new ones keep theirs.
      expect((await store.get(0))?.keyHash).toBeNull()
      expect((await store.get(await store.create({ keyHash: 'cd'.repeat(32) })))?.keyHash).toBe('cd'.repeat(32))
      // Tasks from before timelines: a `created` made from the creation time.
      expect(await store.events(2)).toEqual([{ at: 1, event: 'created' }])
      expect(await store.events(4)).toBeUndefined()
      await store.close()
    } finally {
      dir.remove()
    }
  })
})

describe('bun:sqlite task store: a file from before timelines', () => {
  test('gets the timeline and figures tables on open; its tasks carry on, each with a `created` from its creation time', async () => {
    const dir = tempDir()
    try {
      const folder = join(dir.path, 'database')
      let clock = Date.UTC(2026, 0, 1)
      const first = openSqliteTaskStore(folder, { leaseSeconds: 60, maxAttempts: 3, now: () => clock })
      const done = await first.create()
      const working = await first.create()
      const waiting = await first.create()
      await first.claim()
      await first.finish(done)
      const claim = (await first.claim()).claim!
      await first.close()
      // The schema of the release before timelines: everything of this one but their tables, triggers and column.
      const old = new Database(join(folder, 'tasks.sqlite'))
      old.exec(`
        DROP TRIGGER tasks_events_removed; DROP TABLE task_events; DROP TABLE task_minutes; DROP TABLE queue_samples;
        ALTER TABLE tasks DROP COLUMN claimed_at;`)
      expect(old.prepare(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%events%'`).all()).toEqual([])
      old.close()
      // Within the lease of the claim made before.
      clock += 30_000
      const store = openSqliteTaskStore(folder, { leaseSeconds: 60, maxAttempts: 3, now: () => clock })
      try {
        expect(await store.events(done)).toEqual([{ at: Date.UTC(2026, 0, 1), event: 'created' }])
        // Claimed before: its finish has no processing time to tell.
        await store.finish(working, claim.leaseToken)
        expect((await store.events(working))?.at(-1)).toEqual({ at: clock, event: 'finished', attempt: 1 })
        await store.claim()
        expect((await store.events(waiting))?.map((e) => e.event)).toEqual(['created', 'claimed'])
        expect((await store.figures({ from: 0, to: clock })).minutes).toMatchObject([{ minute: Date.UTC(2026, 0, 1), created: 0, finished: 1 }])
      } finally {
        await store.close()
      }
    } finally {
      dir.remove()
    }
  })

  test('no event outlives its task: removal deletes a task’s events with its record', async () => {
    const dir = tempDir()
    try {
      const folder = join(dir.path, 'database')
      const store = openSqliteTaskStore(folder, { leaseSeconds: 60, maxAttempts: 3 })
      const ids = [await store.create(), await store.create()]
      for (const id of ids) {
        const claim = (await store.claim()).claim!
        await store.finish(id, claim.leaseToken)
      }
      await store.markOneForRemoval(ids[0]!)
      await store.removeMarked([ids[0]!])
      await store.close()
      const db = new Database(join(folder, 'tasks.sqlite'), { readonly: true })
      expect(db.prepare('SELECT DISTINCT task_id AS id FROM task_events').all()).toEqual([{ id: ids[1] }])
      db.close()
    } finally {
      dir.remove()
    }
  })
})
