// The history of the charts: per-minute figures gathered into buckets, percentiles of processing time, the queue sampler.
import { type Cancel, type Clock, systemClock } from '../../shared/clock.ts'
import type { Logger } from '../../shared/logger.ts'
import { type MinuteFigures, PROCESSING_BUCKETS_MS, type QueueSample, type TaskStore } from './task-store.ts'

/** The most buckets one history answer holds (a day of minutes). */
export const MAX_BUCKETS = 1440

/** How often the database role samples the queue's depth. */
export const SAMPLE_EVERY_MS = 15_000

export interface HistoryBucket {
  /** The bucket's start, epoch ms. */
  readonly at: number
  readonly created: number
  readonly finished: number
  readonly failed: number
  readonly failedForGood: number
  /** The last sample of the queue's depth in the bucket; null when none was taken. */
  readonly waiting: number | null
  readonly inProgress: number | null
  readonly processing: { readonly count: number; readonly p50: number | null; readonly p95: number | null }
}

/**
 * The `q` quantile (0-1) of observations counted per bucket (`counts[i]`: those at or below `bounds[i]` and above the
 * bound before; the last count: those above every bound), interpolated linearly within its bucket as Prometheus'
 * histogram_quantile does: from 0 in the first bucket, and the highest bound when it falls above every bound. Null when
 * nothing was observed.
 */
export function histogramQuantile(q: number, counts: readonly number[], bounds: readonly number[] = PROCESSING_BUCKETS_MS): number | null {
  const total = counts.reduce((sum, n) => sum + n, 0)
  if (total === 0) return null
  const rank = q * total
  let below = 0
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i]!
    if (below + count >= rank && count > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!
      const start = i === 0 ? 0 : bounds[i - 1]!
      return start + (bounds[i]! - start) * ((rank - below) / count)
    }
    below += count
  }
  return bounds[bounds.length - 1]!
}

/** Whole buckets of `step` ms from `since` (a minute's start) that have begun by `now`. */
export function bucketCount(since: number, step: number, now: number): number {
  return Math.floor((now - since) / step) + 1
}

/**
 * Gathers per-minute figures and samples into buckets of `step` ms (a multiple of a minute) from `since` to `now`: every
 * bucket present, zeros for quiet ones; the queue's depth is the last sample in each.
 */
export function historyBuckets(options: {
  since: number
  step: number
  now: number
  minutes: readonly MinuteFigures[]
  samples: readonly QueueSample[]
}): HistoryBucket[] {
  const { since, step } = options
  const n = Math.max(0, bucketCount(since, step, options.now))
  const sums = Array.from({ length: n }, () => ({
    created: 0,
    finished: 0,
    failed: 0,
    failedForGood: 0,
    processing: new Array<number>(PROCESSING_BUCKETS_MS.length + 1).fill(0),
  }))
  const depth: ({ waiting: number; inProgress: number; at: number } | undefined)[] = new Array(n).fill(undefined)
  const bucketOf = (minute: number) => Math.floor((minute - since) / step)
  for (const m of options.minutes) {
    const sum = sums[bucketOf(m.minute)]
    if (!sum) continue
    sum.created += m.created
    sum.finished += m.finished
    sum.failed += m.failed
    sum.failedForGood += m.failedForGood
    for (const [i, count] of m.processing.entries()) sum.processing[i]! += count
  }
  for (const s of options.samples) {
    const k = bucketOf(s.minute)
    if (k < 0 || k >= n) continue
    if (depth[k] === undefined || s.at >= depth[k].at) depth[k] = s
  }
  const ms = (value: number | null) => (value === null ? null : Math.round(value * 10) / 10)
  return sums.map(({ processing, ...sum }, k) => ({
    at: since + k * step,
    ...sum,
    waiting: depth[k]?.waiting ?? null,
    inProgress: depth[k]?.inProgress ?? null,
    processing: {
      count: processing.reduce((a, b) => a + b, 0),
      p50: ms(histogramQuantile(0.5, processing)),
      p95: ms(histogramQuantile(0.95, processing)),
    },
  }))
}

export interface QueueSampler {
  /** Samples now, then every `everyMs`. */
  start(): void
  /** Stops sampling; waits for a sample in flight. */
  stop(): Promise<void>
}

/**
 * Samples the queue's depth into the current minute's figures every SAMPLE_EVERY_MS (the store also drops figures older
 * than it keeps). Instances sharing PostgreSQL each sample; the latest sample of a minute stays.
 */
export function createQueueSampler(options: { store: TaskStore; log: Logger; everyMs?: number; clock?: Clock }): QueueSampler {
  const { store, log } = options
  const clock = options.clock ?? systemClock
  let timer: Cancel | undefined
  let sampling: Promise<void> | undefined
  let failing = false
  const sample = () => {
    sampling ??= store
      .sampleQueue()
      .then(
        () => {
          if (failing) log.info('sampling the queue works again')
          failing = false
        },
        (error: unknown) => {
          if (!failing) log.warn({ err: (error as Error).message }, 'sampling the queue failed; trying again at the next')
          failing = true
        },
      )
      .finally(() => (sampling = undefined))
  }
  return {
    start() {
      if (timer) return
      sample()
      timer = clock.every(options.everyMs ?? SAMPLE_EVERY_MS, sample, { unref: true })
    },
    async stop() {
      timer?.()
      timer = undefined
      await sampling
    },
  }
}
