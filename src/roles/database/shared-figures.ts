// Which database instance reports the figures of a task store they all share, so that a sum over instances is true.
import type { KvClient } from '../../clients/kv-client.ts'

/** Resolves true when this instance is the one to report the shared store's figures now. */
export type ReportsSharedFigures = () => Promise<boolean>

/**
 * The instance with the lowest address among the live ones registered in kv (`<key>/<address>`) reports; the others
 * leave the shared gauges out. No lease, no write: each instance reads the same registry and comes to the same answer,
 * and when the reporter goes its registration runs out and the next lowest takes over. The list is read at most every
 * `cacheMs`; while kv cannot be read the last list holds, and an instance that never read one reports (alone, as an
 * instance over its own store, or behind an original kv that keeps no instances, it is the only one to).
 */
export function lowestAddressReports(
  kv: KvClient,
  key: string,
  self: () => string,
  options: { cacheMs?: number; now?: () => number } = {},
): ReportsSharedFigures {
  const cacheMs = options.cacheMs ?? 5000
  const now = options.now ?? Date.now
  const prefix = `${key}/`
  let live: string[] | undefined
  let reading: Promise<void> | undefined
  let readAt = -Infinity
  const read = async () => {
    try {
      live = (await kv.list(prefix)).filter(([name]) => name.startsWith(prefix)).map(([, value]) => value)
    } catch {
      // kv unreachable: keep the last list
    }
  }
  return async () => {
    // Callers at the same moment (every gauge of one scrape) share one read, and so one answer.
    if (now() - readAt >= cacheMs) {
      readAt = now()
      reading = read()
    }
    await reading
    const me = self()
    if (live === undefined || !live.includes(me)) return live === undefined || live.length === 0
    return live.every((address) => address >= me)
  }
}
