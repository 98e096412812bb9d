// KvStore on Redis (Bun's built-in RedisClient): several kv role instances serve the same pairs.
//
// Durability: a method resolves only after Redis answered the command, so `success` means Redis has the
// pair. What survives a crash then depends on Redis's persistence, which is the Redis operator's choice:
// - `appendonly yes` + `appendfsync always` (what the tests run, and what we recommend for the registry,
//   whose writes are few): Redis appends the command to its append-only file and fsyncs it before it
//   replies, so an acknowledged pair survives `kill -9` of redis-server and a crash of the machine.
// - `appendonly yes` + `appendfsync everysec` (Redis's default fsync policy): the command is written to the
//   file (the OS's page cache) before the reply, so it survives `kill -9` of redis-server (unless a slow
//   disk made Redis postpone the write, up to 2 s); a crash of the machine can lose about the last second.
// - `appendonly no` (RDB snapshots only, or none): a Redis restart loses the pairs written since the last
//   snapshot. We warn in the log when we see this (CONFIG GET may be disabled on managed Redis).
// A TTL is stored by Redis as an absolute expiry time, so it survives a restart of Redis as well.

import { RedisClient } from 'bun'
import { withDeadline } from '../../shared/async.ts'
import { DependencyUnavailable } from '../../shared/errors.ts'
import { type Logger, silentLogger } from '../../shared/logger.ts'
import type { KvStore } from './kv-store.ts'

export interface RedisKvStoreOptions {
  /** Prefix of every key this store writes, so other data in the same Redis is untouched. Default `pixmill:kv:`. */
  readonly namespace?: string
  /** A command (connecting included) that has not answered by then fails with DependencyUnavailable. Default 1000 ms. */
  readonly commandTimeoutMs?: number
  /** Gets one line when Redis becomes unavailable or available again, and the persistence warning. Default: silent. */
  readonly log?: Logger
}

/** Redis's glob characters, escaped so that a user's prefix matches only itself in SCAN ... MATCH. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}

/** `redis://user:secret@host` without the secret, for logs. */
export function redactRedisUrl(url: string): string {
  const parsed = new URL(url)
  if (parsed.password) parsed.password = '***'
  return parsed.toString()
}

const SCAN_COUNT = 1000
const MGET_CHUNK = 500

/**
 * Opens a store over the Redis at `url` (`redis://` or `rediss://`). It connects in the background and
 * never throws here: while Redis cannot be reached, every method rejects with DependencyUnavailable
 * within `commandTimeoutMs` and healthy() answers false; the next call after Redis is back reconnects.
 */
export function openRedisKvStore(url: string, options: RedisKvStoreOptions = {}): KvStore {
  const namespace = options.namespace ?? 'pixmill:kv:'
  const timeoutMs = options.commandTimeoutMs ?? 1000
  const log = options.log ?? silentLogger
  const client = new RedisClient(url, {
    // Without the offline queue a command while disconnected fails at once instead of waiting for a
    // reconnection that may never come (the kv route answers 503, the caller's back-off retries).
    enableOfflineQueue: false,
    // We reconnect ourselves, on demand (ensureConnected): the next call after a drop connects again, and
    // connects at once when Redis is back. Bun's own reconnection makes connect() wait through its back-off
    // (20 retries by default, ~30 s), then gives up for good; it has also had bugs (oven-sh/bun#19131, #24019).
    autoReconnect: false,
    connectionTimeout: timeoutMs,
  })
  let connecting: Promise<unknown> | undefined
  let closed = false
  let available = true
  let persistenceChecked = false

  const ensureConnected = (): Promise<unknown> => {
    if (client.connected) return Promise.resolve()
    // One connect() shared by every caller that finds the connection down.
    connecting ??= client.connect().finally(() => (connecting = undefined))
    return connecting
  }

  const checkPersistence = async () => {
    persistenceChecked = true
    try {
      const reply = (await client.send('CONFIG', ['GET', 'appendonly'])) as Record<string, string> | string[]
      const value = Array.isArray(reply) ? reply[1] : reply.appendonly
      if (value !== 'yes') log.warn('kv store: Redis runs without appendonly, so a restart of Redis can lose pairs that were acknowledged')
    } catch {
      log.warn('kv store: could not read Redis appendonly setting (CONFIG GET refused); make sure Redis persists to its append-only file')
    }
  }

  /** Runs one command under the deadline; any failure of Redis becomes DependencyUnavailable. */
  const run = async <T>(command: () => Promise<T>): Promise<T> => {
    if (closed) throw new DependencyUnavailable('The kv store is closed.')
    let late = false
    try {
      const attempt = ensureConnected().then(() => {
        // A write must not reach Redis after its caller was already told it failed.
        if (late) throw new Error('connected too late')
        return command()
      })
      const result = await withDeadline(attempt, timeoutMs, () => {
        late = true
        return new Error(`Redis did not answer within ${timeoutMs} ms`)
      })
      if (!available) log.info('kv store: Redis is available again')
      available = true
      if (!persistenceChecked) void checkPersistence()
      return result
    } catch (error) {
      if (closed) throw new DependencyUnavailable('The kv store is closed.')
      if (available) log.warn({ err: error }, 'kv store: Redis is unavailable')
      available = false
      throw Object.assign(new DependencyUnavailable('The kv store (Redis) is unavailable; try again later.'), { cause: error })
    }
  }

  // Connect now, so that the first request does not pay for it; a failure here is only logged.
  void run(() => client.send('PING', [])).catch(() => {})

  return {
    async get(key) {
      return (await run(() => client.get(namespace + key))) ?? undefined
    },
    async set(key, value, setOptions) {
      const k = namespace + key
      if (setOptions?.ttlSeconds === undefined) {
        // A plain SET drops any time to live the key had, as the contract wants.
        await run(() => client.set(k, value))
      } else {
        // PX: a fractional ttl keeps its precision; at least 1 ms, as Redis refuses 0.
        const ms = Math.max(1, Math.round(setOptions.ttlSeconds * 1000))
        await run(() => client.set(k, value, 'PX', ms))
      }
    },
    async remove(key) {
      return (await run(() => client.del(namespace + key))) > 0
    },
    async list(prefix = '') {
      const full = namespace + prefix
      const pattern = `${escapeGlob(full)}*`
      // SCAN walks the keyspace in small steps (never KEYS, which blocks Redis); it may repeat a key.
      const keys = new Set<string>()
      let cursor = '0'
      do {
        const [next, batch] = await run(() => client.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT))
        for (const key of batch) if (key.startsWith(full)) keys.add(key)
        cursor = String(next)
      } while (cursor !== '0')
      const sorted = [...keys].sort()
      const pairs: Array<readonly [string, string]> = []
      for (let i = 0; i < sorted.length; i += MGET_CHUNK) {
        const chunk = sorted.slice(i, i + MGET_CHUNK)
        const values = (await run(() => client.send('MGET', chunk))) as Array<string | null>
        // A key that expired or was removed between SCAN and MGET reads as null: it is gone.
        chunk.forEach((key, j) => {
          const value = values[j]
          if (value !== null && value !== undefined) pairs.push([key.slice(namespace.length), value])
        })
      }
      return pairs
    },
    async healthy() {
      try {
        return (await run(() => client.send('PING', []))) === 'PONG'
      } catch {
        return false
      }
    },
    async close() {
      if (closed) return
      closed = true
      client.close()
    },
  }
}
