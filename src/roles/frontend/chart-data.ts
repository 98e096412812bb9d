// The figures behind the board's charts: the database's history of tasks, and each worker's tasks per minute.
import type { ConsoleSource, HistoryWindow } from './console-source.ts'
import type { WorkerDirectory } from './worker-directory.ts'

/** One bucket as the charts draw it: rates per minute, the queue, processing time in ms. */
export interface ChartBucket {
  readonly at: string
  readonly created: number
  readonly finished: number
  readonly failed: number
  readonly waiting: number | null
  readonly inProgress: number | null
  readonly p50: number | null
  readonly p95: number | null
}

export interface ChartData {
  readonly window: HistoryWindow
  /** Bucket width, ms. */
  readonly step: number
  readonly buckets: readonly ChartBucket[]
  /** Images finished per second by each live worker, one figure per bucket. */
  readonly workers: ReadonlyArray<{ readonly address: string; readonly perSecond: readonly number[] }>
  /** Why a part is missing (the master offers no history, kv cannot be read), for the board to say. */
  readonly problems: readonly string[]
  readonly generatedAt: string
}

/**
 * Reads both and lines them up on the database's buckets. Counts per bucket become rates per minute, so that the hour
 * (1-minute buckets) and the day (15-minute buckets) read on one scale.
 */
export async function chartData(window: HistoryWindow, source: ConsoleSource, workers: WorkerDirectory | undefined, now = Date.now()): Promise<ChartData> {
  const problems: string[] = []
  const history = await source.history(window).catch((error: Error) => {
    problems.push(`The task history cannot be read: ${error.message}`)
    return undefined
  })
  const step = history?.step ?? (window === 'hour' ? 60_000 : 900_000)
  const perMinute = (n: number) => Math.round((n * 60_000 * 100) / step) / 100
  const buckets: ChartBucket[] = (history?.buckets ?? []).map((b) => ({
    at: b.at,
    created: perMinute(b.created),
    finished: perMinute(b.finished),
    failed: perMinute(b.failed),
    waiting: b.waiting,
    inProgress: b.inProgress,
    p50: b.processingMs.p50,
    p95: b.processingMs.p95,
  }))
  const starts = buckets.map((b) => Date.parse(b.at))
  const since = starts[0] ?? now - (window === 'hour' ? 3_600_000 : 86_400_000)
  const histories = workers
    ? await workers.histories(since).catch((error: Error) => {
        problems.push(`The workers cannot be listed: ${error.message}`)
        return []
      })
    : []
  const perSecondOf = (minutes: ReadonlyArray<{ at: string; done: number }>) => {
    const done = new Array<number>(starts.length).fill(0)
    for (const minute of minutes) {
      const at = Date.parse(minute.at)
      // The bucket this minute falls in: the last start at or before it.
      let index = starts.length - 1
      while (index >= 0 && starts[index]! > at) index--
      if (index >= 0) done[index]! += minute.done
    }
    return done.map((n) => Math.round((n * 1000 * 1000) / step) / 1000)
  }
  return {
    window,
    step,
    buckets,
    workers: histories.map(({ address, minutes }) => ({ address, perSecond: perSecondOf(minutes) })),
    problems,
    generatedAt: new Date(now).toISOString(),
  }
}
