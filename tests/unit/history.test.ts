// The charts' history from per-minute figures: buckets, percentiles as Prometheus computes them, the queue sampler.
import { describe, expect, test } from 'bun:test'
import { createQueueSampler, histogramQuantile, historyBuckets } from '../../src/roles/database/history.ts'
import type { MinuteFigures, TaskStore } from '../../src/roles/database/task-store.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { manualClock } from '../helpers/manual-clock.ts'

/** Counts per bucket of PROCESSING_BUCKETS_MS (10, 25, 50, 100, 250, ... 60000, +Inf) from `{ bucketIndex: count }`. */
const counts = (byBucket: Record<number, number>) => Array.from({ length: 13 }, (_, i) => byBucket[i] ?? 0)

describe('histogramQuantile', () => {
  test('interpolates within the bucket the rank falls in, as histogram_quantile does', () => {
    // Ten in (50, 100]: the median is halfway through it, the 95th percentile near its top.
    expect(histogramQuantile(0.5, counts({ 3: 10 }))).toBe(75)
    expect(histogramQuantile(0.95, counts({ 3: 10 }))).toBe(97.5)
    // The first bucket starts at 0.
    expect(histogramQuantile(0.5, counts({ 0: 4 }))).toBe(5)
    // Four at most 10 ms, four in (250, 500]: the median is the top of the first; p95 in the second, skipping the empty ones.
    expect(histogramQuantile(0.5, counts({ 0: 4, 5: 4 }))).toBe(10)
    expect(histogramQuantile(0.95, counts({ 0: 4, 5: 4 }))).toBeCloseTo(250 + 250 * (3.6 / 4))
  })

  test('above every bound it answers the highest bound; with nothing observed, null', () => {
    expect(histogramQuantile(0.95, counts({ 12: 3 }))).toBe(60_000)
    expect(histogramQuantile(0.5, counts({ 11: 1, 12: 1 }))).toBe(60_000)
    expect(histogramQuantile(0.5, counts({}))).toBeNull()
  })
})

describe('historyBuckets', () => {
  const T0 = Date.UTC(2026, 0, 1, 12, 0)
  const minute = (k: number, figures: Partial<MinuteFigures>): MinuteFigures => ({
    minute: T0 + k * 60_000,
    created: 0,
    finished: 0,
    failed: 0,
    failedForGood: 0,
    processing: counts({}),
    ...figures,
  })

  test('every bucket from since to now, figures added up per bucket, quiet buckets zero, the last sample of each', () => {
    const buckets = historyBuckets({
      since: T0,
      step: 120_000,
      now: T0 + 5 * 60_000 + 30_000,
      minutes: [
        minute(0, { created: 2, finished: 1, processing: counts({ 3: 1 }) }),
        minute(1, { created: 1, failed: 2, failedForGood: 1, finished: 1, processing: counts({ 3: 1 }) }),
        minute(5, { created: 7 }),
      ],
      samples: [
        { minute: T0, at: T0 + 45_000, waiting: 5, inProgress: 1 },
        { minute: T0 + 60_000, at: T0 + 75_000, waiting: 4, inProgress: 2 },
        { minute: T0 + 5 * 60_000, at: T0 + 5 * 60_000 + 15_000, waiting: 9, inProgress: 0 },
      ],
    })
    expect(buckets).toEqual([
      { at: T0, created: 3, finished: 2, failed: 2, failedForGood: 1, waiting: 4, inProgress: 2, processing: { count: 2, p50: 75, p95: 97.5 } },
      {
        at: T0 + 120_000,
        created: 0,
        finished: 0,
        failed: 0,
        failedForGood: 0,
        waiting: null,
        inProgress: null,
        processing: { count: 0, p50: null, p95: null },
      },
      { at: T0 + 240_000, created: 7, finished: 0, failed: 0, failedForGood: 0, waiting: 9, inProgress: 0, processing: { count: 0, p50: null, p95: null } },
    ])
  })

  test('figures outside the window are left out', () => {
    const buckets = historyBuckets({
      since: T0 + 60_000,
      step: 60_000,
      now: T0 + 60_000,
      minutes: [minute(0, { created: 1 }), minute(1, { created: 2 })],
      samples: [],
    })
    expect(buckets.map((b) => [b.at, b.created])).toEqual([[T0 + 60_000, 2]])
  })
})

describe('the queue sampler', () => {
  test('samples at start and then every interval, and stops', async () => {
    let samples = 0
    const store = { sampleQueue: async () => void samples++ } as unknown as TaskStore
    const clock = manualClock()
    const sampler = createQueueSampler({ store, log: silentLogger, everyMs: 20, clock })
    sampler.start()
    expect(samples).toBe(1)
    await clock.advance(70)
    await sampler.stop()
    expect(samples).toBe(4)
    await clock.advance(50)
    expect(samples).toBe(4)
    expect(clock.pending()).toBe(0)
  })

  test('a failing store is logged once and sampled again at the next interval', async () => {
    let calls = 0
    const warnings: string[] = []
    const log = { ...silentLogger, warn: (_: unknown, message: string) => void warnings.push(message), info: () => {} } as unknown as typeof silentLogger
    const store = {
      sampleQueue: async () => {
        calls++
        throw new Error('PostgreSQL is down')
      },
    } as unknown as TaskStore
    const clock = manualClock()
    const sampler = createQueueSampler({ store, log, everyMs: 10, clock })
    sampler.start()
    await clock.advance(60)
    await sampler.stop()
    expect(calls).toBe(7)
    expect(warnings.length).toBe(1)
  })
})
