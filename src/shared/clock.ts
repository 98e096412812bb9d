// Time as a dependency: what a role reads the time from and schedules its timers with, so that tests move time
// instead of sleeping (tests/helpers/manual-clock.ts).

/** Ends a scheduled timer; calling it again, or after the timer ran, does nothing. */
export type Cancel = () => void

export interface TimerOptions {
  /**
   * The timer does not keep the process alive (renewals, heartbeats, sweeps: background work that must not hold a
   * stopping process). Default false, as setTimeout.
   */
  readonly unref?: boolean
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Calls `fn` once, `ms` from now. */
  after(ms: number, fn: () => void, options?: TimerOptions): Cancel
  /** Calls `fn` every `ms` from now on, until cancelled. */
  every(ms: number, fn: () => void, options?: TimerOptions): Cancel
}

/** The real clock: Date.now, setTimeout, setInterval. */
export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn, options) {
    const timer = setTimeout(fn, ms)
    if (options?.unref) timer.unref()
    return () => clearTimeout(timer)
  },
  every(ms, fn, options) {
    const timer = setInterval(fn, ms)
    if (options?.unref) timer.unref()
    return () => clearInterval(timer)
  },
}
