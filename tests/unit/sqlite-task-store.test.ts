// The embedded task store (bun:sqlite) against the TaskStore contract.
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import { taskStoreContract } from '../helpers/task-store-contract.ts'
import { tempDir } from '../helpers/temp.ts'

taskStoreContract('bun:sqlite', () => {
  const dir = tempDir()
  return { open: (options) => openSqliteTaskStore(join(dir.path, 'database'), options), cleanup: dir.remove }
})

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
      await store.close()
    } finally {
      dir.remove()
    }
  })
})
