// Where a peer role is: its live instances, looked up in kv, spread over, and looked up again after a failure.

import { orAfter, withDeadline } from '../shared/async.ts'
import { withBackoff } from '../shared/backoff.ts'
import { DependencyUnavailable } from '../shared/errors.ts'
import type { Logger } from '../shared/logger.ts'
import type { Fetch } from './http.ts'
import type { KvClient } from './kv-client.ts'

export interface PeerAddress {
  /** The peer's kv key, e.g. `storageAddress`. */
  readonly key: string
  /** An address of a live instance (`host:port`), round-robin over them; looked up in kv when none is known. */
  current(): Promise<string>
  /** `address` failed: skip it for a while and look the instances up again on the next call. */
  invalidate(address?: string): void
}

/** A fixed address, for tests and for peers given on the command line. */
export function fixedPeer(key: string, address: string): PeerAddress {
  return { key, current: async () => address, invalidate() {} }
}

export interface LookupOptions {
  readonly log?: Logger
  /** Attempts before giving up on one lookup. Default 5 (a few seconds); start-up waits longer. */
  readonly attempts?: number
  /** How long a list of instances is trusted before it is looked up again, in ms. Default 3000. */
  readonly refreshMs?: number
  /** How long a failed instance is skipped, in ms. Default 5000. */
  readonly skipMs?: number
  /** How long a call waits for a kv lookup when it can go on with the instances it knew, in ms. Default 1000. */
  readonly patienceMs?: number
  readonly now?: () => number
}

/**
 * The instances of a role as registered in kv: every live `<key>/<address>` registration (kept alive by each
 * instance's heartbeat), or, where there is none (an original peer), the plain `<key>` the original protocol uses.
 * Calls are spread round-robin; an instance that failed is skipped for `skipMs` unless it is the only one.
 */
export function kvPeer(kv: KvClient, key: string, options: LookupOptions = {}): PeerAddress {
  const now = options.now ?? Date.now
  const refreshMs = options.refreshMs ?? 3000
  const skipMs = options.skipMs ?? 5000
  let instances: string[] = []
  let fetchedAt = -Infinity
  let next = 0
  let pending: Promise<string[]> | undefined
  const skipped = new Map<string, number>()

  const lookup = async (): Promise<string[]> => {
    const registered = (await kv.list(`${key}/`)).map(([, value]) => value)
    if (registered.length > 0) return [...new Set(registered)].sort()
    const single = await kv.get(key)
    if (single === undefined) throw new DependencyUnavailable(`${key} is not registered in kv at ${kv.address}`)
    return [single]
  }

  const refresh = (attempts: number) => {
    // Concurrent callers share one lookup.
    pending ??= withBackoff(lookup, { what: `looking up ${key} in kv`, attempts, initialMs: 100, maxMs: 1000, log: options.log })
      .then((found) => {
        if (found.join() !== instances.join()) options.log?.info({ key, instances: found }, `found ${key}`)
        instances = found
        fetchedAt = now()
        return found
      })
      .finally(() => {
        pending = undefined
      })
    return pending
  }

  return {
    key,
    async current() {
      let list = instances
      if (list.length === 0 || now() - fetchedAt > refreshMs) {
        try {
          // With instances known, one quick look: back-off here would hold up every call while kv is down, and a kv
          // store that hangs (stopped, overloaded) would hold it up for the whole time-out of the lookup.
          list =
            list.length === 0
              ? await refresh(options.attempts ?? 5)
              : await withDeadline(refresh(1), options.patienceMs ?? 1000, () => new Error(`no answer within ${options.patienceMs ?? 1000} ms`))
        } catch (error) {
          // kv down: keep using what we knew rather than failing calls that could still work, and ask kv again only
          // after another refreshMs (before, every call paid 1.5 s of back-off: 4.4 s per upload while kv was down).
          if (list.length === 0) throw error
          fetchedAt = now()
        }
      }
      const t = now()
      const usable = list.filter((address) => (skipped.get(address) ?? 0) <= t)
      const pool = usable.length > 0 ? usable : list
      return pool[next++ % pool.length]!
    },
    invalidate(address) {
      if (address !== undefined) skipped.set(address, now() + skipMs)
      fetchedAt = -Infinity
    },
  }
}

export interface PeerCallOptions {
  /** Safe to repeat even if the first attempt took effect (reads, downloads). */
  readonly idempotent?: boolean
  /** The request can be sent again as it is (no body, or a body held in memory; not a stream). Default true. */
  readonly replayable?: boolean
}

/**
 * Runs `call` against an instance of the peer; a failed instance is skipped and the instances are looked up again.
 * The call is tried once more at once on another instance (or the role's new address) when that cannot do it twice:
 * an idempotent call, or a replayable one that never reached the first instance (connection refused).
 */
export async function onPeer<T>(peer: PeerAddress, call: (address: string) => Promise<T>, options: PeerCallOptions = {}): Promise<T> {
  const address = await peer.current()
  try {
    return await call(address)
  } catch (error) {
    if (!(error instanceof DependencyUnavailable)) throw error
    peer.invalidate(address)
    const safe = options.idempotent || (error.notSent && options.replayable !== false)
    if (!safe) throw error
    const other = await peer.current().catch(() => address)
    if (other === address) throw error
    return call(other)
  }
}

/**
 * Whether an instance of the peer answers `/health` with 200 (or, being an original role, answers at all) within
 * `timeoutMs`; a failing one is skipped next time.
 */
export async function peerHealthy(peer: PeerAddress, fetcher: Fetch, timeoutMs = 1000): Promise<boolean> {
  let address: string | undefined
  try {
    address = await orAfter(peer.current(), timeoutMs, undefined)
    if (address === undefined) return false
    const response = await fetcher(new Request(`http://${address}/health`, { signal: AbortSignal.timeout(timeoutMs) }))
    // An original role has no /health: its router's bare `404 page not found` says it is up, which is all it can say.
    const ok = response.ok || (response.status === 404 && !(await response.text()).startsWith('Error:'))
    await response.body?.cancel().catch(() => {})
    if (!ok) peer.invalidate(address)
    return ok
  } catch {
    peer.invalidate(address)
    return false
  }
}
