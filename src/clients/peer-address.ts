// Where a peer role is: looked up in kv, cached, looked up again after the peer failed (it may have moved).
import { DependencyUnavailable } from '../shared/errors.ts'
import { withBackoff } from '../shared/backoff.ts'
import type { Logger } from '../shared/logger.ts'
import type { KvClient } from './kv-client.ts'

export interface PeerAddress {
  /** The peer's kv key, e.g. `storageAddress`. */
  readonly key: string
  /** The cached `host:port`, looked up in kv when there is none. */
  current(): Promise<string>
  /** Forget the cached address, so the next call looks it up again. */
  invalidate(): void
}

/** A fixed address, for tests and for peers given on the command line. */
export function fixedPeer(key: string, address: string): PeerAddress {
  return { key, current: async () => address, invalidate() {} }
}

export interface LookupOptions {
  readonly log?: Logger
  /** Attempts before giving up on one lookup. Default 5 (a few seconds); start-up waits longer with `waitFor`. */
  readonly attempts?: number
}

/** Looks `key` up in kv, with a short bounded back-off while the kv store or the key is not there. */
export function kvPeer(kv: KvClient, key: string, options: LookupOptions = {}): PeerAddress {
  let cached: string | undefined
  let pending: Promise<string> | undefined
  const lookup = async () => {
    const value = await kv.get(key)
    if (value === undefined) throw new DependencyUnavailable(`${key} is not registered in kv at ${kv.address}`)
    return value
  }
  return {
    key,
    async current() {
      if (cached !== undefined) return cached
      // Concurrent callers share one lookup.
      pending ??= withBackoff(lookup, { what: `looking up ${key} in kv`, attempts: options.attempts ?? 5, initialMs: 100, maxMs: 1000, log: options.log })
        .then((value) => {
          if (value !== cached) options.log?.info({ key, address: value }, `found ${key}`)
          cached = value
          return value
        })
        .finally(() => {
          pending = undefined
        })
      return pending
    },
    invalidate() {
      cached = undefined
    },
  }
}

/**
 * Runs `call` against the peer's current address; a failure of the peer makes the next call look it up again.
 * An `idempotent` call is tried once more at once when the peer turns out to have moved (a restarted role may come
 * back on another address); other calls are not repeated, since their first attempt may have taken effect.
 */
export async function onPeer<T>(peer: PeerAddress, call: (address: string) => Promise<T>, options: { idempotent?: boolean } = {}): Promise<T> {
  const address = await peer.current()
  try {
    return await call(address)
  } catch (error) {
    if (!(error instanceof DependencyUnavailable)) throw error
    peer.invalidate()
    if (!options.idempotent) throw error
    const moved = await peer.current().catch(() => address)
    if (moved === address) throw error
    return call(moved)
  }
}
