// Claims that wait for a task (`POST /getNewTask?wait=S`): woken when a task becomes claimable, not by polling.
import { type Cancel, type Clock, systemClock } from '../../shared/clock.ts'
import type { ClaimResult } from './task-store.ts'

export interface ClaimWaitsOptions {
  /** One claim attempt. */
  readonly claim: () => Promise<ClaimResult>
  /** Whether a claim could succeed now (cheap). */
  readonly claimable: () => Promise<boolean>
  /** Gives a claim back at once, no attempt counted (its waiter went away while it was made). */
  readonly release: (claim: NonNullable<ClaimResult['claim']>) => Promise<void>
  /**
   * While claims wait, how often to look for a task made claimable elsewhere (another database instance on the same
   * PostgreSQL, a lease that ran out). Default 250 ms. Changes through this instance wake the waiters at once.
   */
  readonly pollMs?: number
  /** The waits' ends and the poll are scheduled on it. Default systemClock. */
  readonly clock?: Clock
}

export interface ClaimWaits {
  /**
   * A claim, or after `waitMs` without a claimable task, none. Waiting claims are served in the order they came.
   * `signal` (the caller going away) ends the wait; a claim made as every waiter went away is given back.
   */
  claim(waitMs: number, signal?: AbortSignal): Promise<ClaimResult>
  /** Tasks may have become claimable (a task created, activated, released, failed back, retried, or a lease ran out). */
  notify(): void
  /** Claims waiting now, for the metrics. */
  size(): number
  /** Answers every waiting claim with none; claims from now on do not wait (the role is stopping). */
  close(): void
}

interface Waiter {
  readonly resolve: (result: ClaimResult) => void
  cancel?: Cancel
}

export function createClaimWaits(options: ClaimWaitsOptions): ClaimWaits {
  const pollMs = options.pollMs ?? 250
  const clock = options.clock ?? systemClock
  const waiters: Waiter[] = []
  let serving: Promise<void> | undefined
  let again = false
  let poller: Cancel | undefined
  let closed = false

  const finish = (waiter: Waiter, result: ClaimResult) => {
    waiter.cancel?.()
    const at = waiters.indexOf(waiter)
    if (at >= 0) waiters.splice(at, 1)
    if (waiters.length === 0) {
      poller?.()
      poller = undefined
    }
    waiter.resolve(result)
  }

  /** Claims for the waiters in order until a claim comes back empty; runs once at a time, again if notified meanwhile. */
  function serve(): void {
    if (serving) {
      again = true
      return
    }
    serving = (async () => {
      do {
        again = false
        while (waiters.length > 0) {
          const result = await options.claim().catch(() => ({ claim: undefined }))
          if (!result.claim) break
          const waiter = waiters[0]
          if (!waiter) {
            // Every waiter went away while the claim was made: nobody holds it, so it goes back now.
            await options.release(result.claim).catch(() => {})
            break
          }
          finish(waiter, result)
        }
      } while (again)
    })().finally(() => (serving = undefined))
  }

  return {
    async claim(waitMs, signal) {
      const now = await options.claim()
      if (now.claim || waitMs <= 0 || signal?.aborted || closed) return now
      return new Promise<ClaimResult>((resolve) => {
        const waiter: Waiter = { resolve }
        waiter.cancel = clock.after(waitMs, () => finish(waiter, { claim: undefined }))
        waiters.push(waiter)
        signal?.addEventListener('abort', () => finish(waiter, { claim: undefined }), { once: true })
        poller ??= clock.every(
          pollMs,
          () =>
            void options.claimable().then(
              (yes) => yes && serve(),
              () => {},
            ),
          { unref: true },
        )
      })
    },
    notify() {
      if (waiters.length > 0) serve()
    },
    size: () => waiters.length,
    close() {
      closed = true
      for (const waiter of [...waiters]) finish(waiter, { claim: undefined })
    },
  }
}
