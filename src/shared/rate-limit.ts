// A per-client limit on uploads: one token bucket per client, in memory, with the number of buckets bounded.

export interface RateLimiter {
  /** Takes one upload from `client`'s allowance: 0 when allowed, else the whole seconds until it may try again. */
  take(client: string): number
  /** Buckets held now (clients seen within the last minute, at most `maxClients`). */
  size(): number
}

export interface RateLimiterOptions {
  /** Uploads a client may make per minute, and at once after a quiet minute. */
  readonly perMinute: number
  /** Most clients tracked; beyond it the one seen longest ago is forgotten. Default 100000 (a few MiB). */
  readonly maxClients?: number
  /** Milliseconds, monotonic; injected so that tests move time instead of sleeping. */
  readonly now?: () => number
}

interface Bucket {
  tokens: number
  at: number
}

/**
 * A bucket holds `perMinute` uploads and refills at `perMinute` a minute. A bucket untouched for a minute is full,
 * which is what a client without one gets: so such buckets are dropped (the few least recently used are looked at on
 * every call), and memory follows the clients of the last minute. Past `maxClients` the least recently used bucket
 * goes even if it is not full, which can only give that client more, never less.
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const capacity = options.perMinute
  const perMs = options.perMinute / 60_000
  const fullAfterMs = 60_000
  const maxClients = options.maxClients ?? 100_000
  const now = options.now ?? (() => performance.now())
  // A Map keeps insertion order: a bucket is put back at the end on every use, so the first is the least recently used.
  const buckets = new Map<string, Bucket>()

  function dropIdle(t: number): void {
    for (let i = 0; i < 4; i++) {
      const first = buckets.entries().next()
      if (first.done || t - first.value[1].at < fullAfterMs) return
      buckets.delete(first.value[0])
    }
  }

  return {
    take(client) {
      const t = now()
      dropIdle(t)
      const bucket = buckets.get(client) ?? { tokens: capacity, at: t }
      bucket.tokens = Math.min(capacity, bucket.tokens + (t - bucket.at) * perMs)
      bucket.at = t
      buckets.delete(client)
      buckets.set(client, bucket)
      if (buckets.size > maxClients) buckets.delete(buckets.keys().next().value!)
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1
        return 0
      }
      return Math.max(1, Math.ceil((1 - bucket.tokens) / perMs / 1000))
    },
    size: () => buckets.size,
  }
}
