// A clock that moves only when a test says so: the Clock of src/shared/clock.ts with advance() in place of waiting.
import type { Cancel, Clock } from '../../src/shared/clock.ts'

interface Timer {
  readonly seq: number
  due: number
  readonly every: number | undefined
  readonly fn: () => void
}

export interface ManualClock extends Clock {
  /**
   * Moves time forward by `ms`, running each timer that falls due on the way at its own time, in order, and letting
   * what it started (promise chains, in-process requests) run before the next.
   */
  advance(ms: number): Promise<void>
  /** Lets promise chains and in-process requests run, without moving time. */
  settle(): Promise<void>
  /** The delays of the timers scheduled so far (`after` and `every`), in order. */
  readonly scheduled: number[]
  /** Timers not yet run or cancelled. */
  pending(): number
}

/** A handful of event-loop turns: enough for the in-process fetches of these tests to answer. */
const TURNS = 8

/** A ManualClock reading `start` (epoch ms) until advanced. */
export function manualClock(start = Date.UTC(2026, 0, 1)): ManualClock {
  let now = start
  let seq = 0
  const timers = new Set<Timer>()
  const scheduled: number[] = []
  const add = (ms: number, fn: () => void, every: number | undefined): Cancel => {
    scheduled.push(ms)
    const timer: Timer = { seq: seq++, due: now + Math.max(0, ms), every, fn }
    timers.add(timer)
    return () => void timers.delete(timer)
  }
  const settle = async () => {
    for (let i = 0; i < TURNS; i++) await new Promise((resolve) => setImmediate(resolve))
  }
  const next = (until: number): Timer | undefined => {
    let first: Timer | undefined
    for (const timer of timers) {
      if (timer.due <= until && (!first || timer.due < first.due || (timer.due === first.due && timer.seq < first.seq))) first = timer
    }
    return first
  }
  return {
    now: () => now,
    after: (ms, fn) => add(ms, fn, undefined),
    every: (ms, fn) => add(ms, fn, Math.max(1, ms)),
    scheduled,
    pending: () => timers.size,
    settle,
    async advance(ms) {
      const end = now + ms
      await settle()
      for (let timer = next(end); timer; timer = next(end)) {
        now = timer.due
        if (timer.every === undefined) timers.delete(timer)
        else timer.due += timer.every
        timer.fn()
        await settle()
      }
      now = end
      await settle()
    },
  }
}
