// KvStore on bun:sqlite (WAL): reads from memory, writes through to disk before they are acknowledged.
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { KvStore } from './kv-store.ts'

/** Opens (creating if needed) `<dir>/kv.sqlite`. */
export function openSqliteKvStore(dir: string): KvStore {
  mkdirSync(dir, { recursive: true })
  const db = new Database(join(dir, 'kv.sqlite'), { create: true, strict: true })
  // WAL with synchronous=NORMAL: a committed pair survives a crash of the process (kill -9).
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;')
  db.exec('CREATE TABLE IF NOT EXISTS pairs (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID')
  const upsert = db.prepare('INSERT INTO pairs (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value')
  const remove = db.prepare('DELETE FROM pairs WHERE key = ?')
  const ping = db.prepare('SELECT 1 AS one')
  // The registry is small and read far more than written: serve reads from a copy in memory.
  const cache = new Map<string, string>()
  for (const row of db.prepare('SELECT key, value FROM pairs').all() as Array<{ key: string; value: string }>) {
    cache.set(row.key, row.value)
  }
  return {
    async get(key) {
      return cache.get(key)
    },
    async set(key, value) {
      upsert.run(key, value)
      cache.set(key, value)
    },
    async remove(key) {
      remove.run(key)
      return cache.delete(key)
    },
    async list() {
      return [...cache.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    },
    async healthy() {
      return existsSync(dir) && ping.get() !== null
    },
    async close() {
      db.close()
    },
  }
}
