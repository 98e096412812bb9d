// KvStore on bun:sqlite (WAL): reads from memory, writes through to disk before they are acknowledged.
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Durability, sqlitePragmas } from '../../shared/durability.ts'
import type { KvStore } from './kv-store.ts'

interface Entry {
  readonly value: string
  /** Epoch milliseconds, or null for a pair that never expires. */
  readonly expiresAt: number | null
}

export interface SqliteKvStoreOptions {
  /** Epoch milliseconds; injected so that tests move time instead of sleeping. */
  readonly now?: () => number
  /** What a committed pair survives (PIXMILL_DURABILITY). Default `process`. */
  readonly durability?: Durability
}

/** Opens (creating if needed) `<dir>/kv.sqlite`. */
export function openSqliteKvStore(dir: string, options: SqliteKvStoreOptions = {}): KvStore {
  const now = options.now ?? Date.now
  mkdirSync(dir, { recursive: true })
  const db = new Database(join(dir, 'kv.sqlite'), { create: true, strict: true })
  // A committed pair survives kill -9; with durability `power`, a power loss too (see durability.ts).
  db.exec(`${sqlitePragmas(options.durability)} PRAGMA busy_timeout = 5000;`)
  db.exec('CREATE TABLE IF NOT EXISTS pairs (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID')
  // Added with registrations that expire: older files get the column on open.
  const columns = db
    .prepare<{ name: string }, []>('PRAGMA table_info(pairs)')
    .all()
    .map((c) => c.name)
  if (!columns.includes('expires_at')) db.exec('ALTER TABLE pairs ADD COLUMN expires_at INTEGER')
  const upsert = db.prepare<unknown, [string, string, number | null]>(
    'INSERT INTO pairs (key, value, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at',
  )
  const remove = db.prepare<unknown, [string]>('DELETE FROM pairs WHERE key = ?')
  const sweep = db.prepare<unknown, [number]>('DELETE FROM pairs WHERE expires_at IS NOT NULL AND expires_at <= ?')
  const ping = db.prepare('SELECT 1 AS one')
  // The registry is small and read far more than written: serve reads from a copy in memory.
  const cache = new Map<string, Entry>()
  sweep.run(now())
  for (const row of db.prepare('SELECT key, value, expires_at FROM pairs').all() as Array<{ key: string; value: string; expires_at: number | null }>) {
    cache.set(row.key, { value: row.value, expiresAt: row.expires_at })
  }
  const live = (entry: Entry | undefined, t: number) => entry !== undefined && (entry.expiresAt === null || entry.expiresAt > t)
  let lastSweep = now()

  return {
    async get(key) {
      const entry = cache.get(key)
      return live(entry, now()) ? entry!.value : undefined
    },
    async set(key, value, setOptions) {
      const t = now()
      const expiresAt = setOptions?.ttlSeconds === undefined ? null : t + setOptions.ttlSeconds * 1000
      upsert.run(key, value, expiresAt)
      cache.set(key, { value, expiresAt })
      // Expired registrations are dropped from disk now and then, not on every read.
      if (t - lastSweep > 60_000) {
        lastSweep = t
        sweep.run(t)
        for (const [k, entry] of cache) if (!live(entry, t)) cache.delete(k)
      }
    },
    async remove(key) {
      remove.run(key)
      const entry = cache.get(key)
      cache.delete(key)
      return live(entry, now())
    },
    async list(prefix) {
      const t = now()
      const pairs: Array<readonly [string, string]> = []
      for (const [key, entry] of cache) if (live(entry, t) && (prefix === undefined || key.startsWith(prefix))) pairs.push([key, entry.value])
      return pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    },
    async healthy() {
      return existsSync(dir) && ping.get() !== null
    },
    async close() {
      db.close()
    },
  }
}
