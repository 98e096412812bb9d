// A bound on work in flight: past it, callers are told to come back later instead of queueing without limit.
import { TooBusy } from './errors.ts'

export interface Gate {
  /** Runs `work` if there is room, else throws TooBusy (503 with Retry-After). */
  run<T>(work: () => Promise<T>): Promise<T>
  readonly inFlight: number
}

export function createGate(limit: number, what: string): Gate {
  let inFlight = 0
  return {
    async run(work) {
      if (inFlight >= limit) throw new TooBusy(`Too many ${what} in progress (${limit}); try again in a moment.`, 1)
      inFlight++
      try {
        return await work()
      } finally {
        inFlight--
      }
    },
    get inFlight() {
      return inFlight
    },
  }
}
