// Which paths beyond the original protocol a peer lacks: learnt from its answers, remembered for a while.

/**
 * Remembers, per peer address, a path that peer answered as an original role does (NotOffered), so that the next
 * calls go straight to the original protocol's way instead of asking twice. Forgotten after `forgetAfterMs`
 * (default 60 s), so that a peer upgraded in place is noticed.
 */
export function createOfferedPaths(forgetAfterMs = 60_000, now: () => number = Date.now) {
  const missingUntil = new Map<string, number>()
  return {
    /** Whether `address` was seen lacking `path` lately. */
    lacks(address: string, path: string): boolean {
      const until = missingUntil.get(`${address} ${path}`)
      if (until === undefined) return false
      if (until > now()) return true
      missingUntil.delete(`${address} ${path}`)
      return false
    },
    /** `address` answered `path` as a role that does not offer it. */
    remember(address: string, path: string): void {
      missingUntil.set(`${address} ${path}`, now() + forgetAfterMs)
    },
  }
}
