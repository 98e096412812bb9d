// Bounded exponential back-off with jitter.
import { sleep } from './async.ts'
import type { Logger } from './logger.ts'

export { sleep } from './async.ts'

export interface BackoffOptions {
  /** What is being waited for, for the log. */
  readonly what: string
  /** Give up after this many attempts. Default 10. */
  readonly attempts?: number
  /** Give up once this many milliseconds have passed, whatever the attempts. */
  readonly withinMs?: number
  /** First delay in ms; doubles each time. Default 200. */
  readonly initialMs?: number
  /** Longest delay in ms. Default 5000. */
  readonly maxMs?: number
  readonly log?: Logger
  readonly signal?: AbortSignal
}

/** Runs `fn` until it resolves, waiting longer after each failure; rethrows the last error when out of attempts. */
export async function withBackoff<T>(fn: () => Promise<T>, options: BackoffOptions): Promise<T> {
  const attempts = options.attempts ?? 10
  const deadline = options.withinMs === undefined ? Infinity : performance.now() + options.withinMs
  let delay = options.initialMs ?? 200
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn()
    } catch (error) {
      const left = deadline - performance.now()
      if (attempt >= attempts || left <= 0 || options.signal?.aborted) throw error
      const wait = Math.min(left, Math.round(delay * (0.8 + Math.random() * 0.4)))
      options.log?.warn({ attempt, of: attempts, retryInMs: wait, err: (error as Error).message }, `${options.what}: not yet, retrying`)
      await sleep(wait, options.signal)
      delay = Math.min(delay * 2, options.maxMs ?? 5000)
    }
  }
}
