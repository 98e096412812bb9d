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
  test('gets the timeline and figures on open; its tasks carry on, each with a `created` from its creation time', async () => {
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
      // The schema of the release before timelines: everything of this one but their tables, triggers and columns.
      const old = new Database(join(folder, 'tasks.sqlite'))
      old.exec(`
        DROP TRIGGER tasks_figures_insert; DROP TRIGGER tasks_figures_update; DROP TABLE task_minutes; DROP TABLE queue_samples;
        ALTER TABLE tasks DROP COLUMN events; ALTER TABLE tasks DROP COLUMN claimed_at;`)
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
})

describe('bun:sqlite task store: a file whose events are in a table of their own', () => {
  test("gets each task's events moved into its record on open, oldest first; the table and its triggers go", async () => {
    const dir = tempDir()
    try {
      const folder = join(dir.path, 'database')
      const T0 = Date.UTC(2026, 0, 1)
      let clock = T0
      const first = openSqliteTaskStore(folder, { leaseSeconds: 60, maxAttempts: 3, now: () => clock })
      const [a, b, c] = [await first.create(), await first.create(), await first.create()]
      await first.close()
      // The schema of the release that kept events in a table (its index and triggers), holding these tasks' events.
      const old = new Database(join(folder, 'tasks.sqlite'))
      old.exec(`
        DROP TRIGGER tasks_figures_insert; DROP TRIGGER tasks_figures_update; ALTER TABLE tasks DROP COLUMN events;
        CREATE TABLE task_events (id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, at INTEGER NOT NULL, event INTEGER NOT NULL,
          attempt INTEGER, error TEXT, for_good INTEGER, ms INTEGER);
        CREATE INDEX task_events_by_task ON task_events (task_id);
        CREATE TRIGGER tasks_events_removed AFTER DELETE ON tasks BEGIN DELETE FROM task_events WHERE task_id = OLD.id; END;
        CREATE TRIGGER task_events_counted AFTER INSERT ON task_events WHEN NEW.event IN (0, 2, 3, 4)
        BEGIN INSERT INTO task_minutes (minute, created) VALUES (NEW.at - NEW.at % 60000, 1) ON CONFLICT (minute) DO UPDATE SET created = created + 1; END;`)
      const insert = old.prepare('INSERT INTO task_events (task_id, at, event, attempt, error, for_good, ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
      // Interleaved, as tasks changed: each timeline is read back in the order its events were written.
      insert.run(a, T0, 0, null, null, null, null)
      insert.run(b, T0, 0, null, null, null, null)
      insert.run(a, T0 + 10, 1, 1, null, null, null)
      insert.run(a, T0 + 20, 3, 1, 'bad "pixels", null]', 0, null)
      insert.run(b, T0 + 25, 6, null, null, null, null)
      insert.run(a, T0 + 30, 1, 2, null, null, null)
      insert.run(a, T0 + 45, 2, 2, null, null, 15)
      old.exec(`UPDATE tasks SET state = 2, attempts = 1 WHERE id = ${a}`)
      old.close()
      clock = T0 + 60_000
      const store = openSqliteTaskStore(folder, { leaseSeconds: 60, maxAttempts: 3, now: () => clock })
      try {
        expect(await store.events(a)).toEqual([
          { at: T0, event: 'created' },
          { at: T0 + 10, event: 'claimed', attempt: 1 },
          { at: T0 + 20, event: 'failed', attempt: 1, error: 'bad "pixels", null]', forGood: false },
          { at: T0 + 30, event: 'claimed', attempt: 2 },
          { at: T0 + 45, event: 'finished', attempt: 2, ms: 15 },
        ])
        expect(await store.events(b)).toEqual([
          { at: T0, event: 'created' },
          { at: T0 + 25, event: 'retried' },
        ])
        // Without events in the table: a `created` from its creation time, as a task from before timelines.
        expect(await store.events(c)).toEqual([{ at: T0, event: 'created' }])
        // It carries on: new events are appended, and a removed task takes its timeline with it.
        const claim = (await store.claim()).claim!
        expect((await store.events(claim.task.id))?.at(-1)).toEqual({ at: clock, event: 'claimed', attempt: 1 })
        await store.markOneForRemoval(a)
        await store.removeMarked([a])
        expect(await store.events(a)).toBeUndefined()
      } finally {
        await store.close()
      }
      const db = new Database(join(folder, 'tasks.sqlite'), { readonly: true })
      expect(db.prepare(`SELECT name FROM sqlite_master WHERE name LIKE 'task_events%' OR name = 'tasks_events_removed'`).all()).toEqual([])
      db.close()
    } finally {
      dir.remove()
    }
  })
})
