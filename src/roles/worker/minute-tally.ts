// Tasks a worker ended per minute, for the last day: what the board's chart of images per second per worker reads.

export interface MinuteCount {
  /** The minute's start, epoch ms. */
  readonly at: number
  readonly done: number
  readonly failed: number
}

export interface MinuteTally {
  add(outcome: 'done' | 'failed', at: number): void
  /** The minutes since `since` (epoch ms) with anything in them, oldest first. */
  since(since: number): MinuteCount[]
}

const MINUTE = 60_000

/** A ring of `minutes` slots (a day by default: 1440 small objects); a slot is reused when its minute comes round again. */
export function createMinuteTally(minutes = 1440): MinuteTally {
  const slots: Array<{ minute: number; done: number; failed: number } | undefined> = new Array(minutes)
  return {
    add(outcome, at) {
      const minute = Math.floor(at / MINUTE)
      const index = minute % minutes
      let slot = slots[index]
      if (slot === undefined || slot.minute !== minute) slot = slots[index] = { minute, done: 0, failed: 0 }
      slot[outcome]++
    },
    since(since) {
      const from = Math.floor(since / MINUTE)
      return slots
        .filter((slot): slot is NonNullable<typeof slot> => slot !== undefined && slot.minute >= from)
        .sort((a, b) => a.minute - b.minute)
        .map((slot) => ({ at: slot.minute * MINUTE, done: slot.done, failed: slot.failed }))
    },
  }
}
