// The board's live feed and the charts' figures: one read per interval whatever the number of boards; rates lined up.
import { describe, expect, test } from 'bun:test'
import { type BoardFeedEvent, createBoardFeed } from '../../src/roles/frontend/board-feed.ts'
import { chartData } from '../../src/roles/frontend/chart-data.ts'
import type { ConsoleSource, HistoryBucket } from '../../src/roles/frontend/console-source.ts'
import type { WorkerDirectory } from '../../src/roles/frontend/worker-directory.ts'
import { manualClock } from '../helpers/manual-clock.ts'

describe('board feed', () => {
  test('three boards share one read per interval; a late one gets the last figures at once; reads stop with the last board', async () => {
    let boardReads = 0
    let historyReads = 0
    const clock = manualClock()
    const feed = createBoardFeed({
      clock,
      board: async () => ({ read: ++boardReads }),
      history: async (window) => ({ window, read: ++historyReads }),
      boardEveryMs: 20,
      historyEveryMs: 60,
    })
    const seen: BoardFeedEvent[][] = [[], [], []]
    const stops = [0, 1].map((n) => feed.subscribe('hour', (event) => seen[n]!.push(event)))
    await clock.advance(100)
    // The first board's own read, then one every 20 ms.
    const reads = boardReads
    expect(reads).toBe(6)
    // Every board got every read: the reads were shared, not one per board.
    for (const n of [0, 1]) expect(seen[n]!.filter((e) => e.type === 'board').length).toBeGreaterThanOrEqual(reads - 1)
    stops.push(feed.subscribe('day', (event) => seen[2]!.push(event)))
    expect(seen[2]![0]).toMatchObject({ type: 'board' })
    await clock.advance(20)
    expect(historyReads).toBeGreaterThanOrEqual(1)
    expect(seen[2]!.some((e) => e.type === 'history')).toBe(true)
    expect(seen[2]!.find((e) => e.type === 'history')).toMatchObject({ data: { window: 'day' } })
    expect(seen[0]!.filter((e) => e.type === 'history').every((e) => (e as { data: { window: string } }).data.window === 'hour')).toBe(true)
    for (const stop of stops) stop()
    expect(feed.size()).toBe(0)
    const after = boardReads
    await clock.advance(80)
    expect(boardReads).toBe(after)
    expect(clock.pending()).toBe(0)
  })

  test('a failing read is told as trouble; close() tells every board to end', async () => {
    let fail = true
    const clock = manualClock()
    const feed = createBoardFeed({
      board: async () => (fail ? Promise.reject(new Error('master down')) : { ok: 1 }),
      history: async () => ({}),
      boardEveryMs: 10,
      clock,
    })
    const events: BoardFeedEvent[] = []
    feed.subscribe('hour', (event) => events.push(event))
    await clock.settle()
    expect(events.find((e) => e.type === 'trouble')).toEqual({ type: 'trouble', message: 'master down' })
    fail = false
    await clock.advance(10)
    expect(events.some((e) => e.type === 'board')).toBe(true)
    feed.close()
    expect(events.at(-1)).toEqual({ type: 'closing' })
    expect(feed.size()).toBe(0)
  })
})

describe('chart data', () => {
  const bucket = (at: string, created: number, p50: number | null = null): HistoryBucket => ({
    at,
    created,
    finished: created,
    failed: 0,
    failedForGood: 0,
    waiting: 1,
    inProgress: null,
    processingMs: { count: created, p50, p95: p50 },
  })
  const source = (buckets: HistoryBucket[], step: number): ConsoleSource => ({
    history: async () => ({ since: buckets[0]!.at, step, buckets }),
    events: async () => [],
    tasks: async () => [],
    status: async () => Promise.reject(new Error('unused')),
  })

  test('counts per bucket become rates per minute; each worker’s minutes fall into their buckets as images per second', async () => {
    const day = source([bucket('2026-11-30T10:00:00.000Z', 30, 120), bucket('2026-11-30T10:15:00.000Z', 0)], 900_000)
    const workers: WorkerDirectory = {
      list: async () => [],
      histories: async () => [
        {
          address: 'w:1',
          minutes: [
            { at: '2026-11-30T10:01:00.000Z', done: 90, failed: 0 },
            { at: '2026-11-30T10:16:00.000Z', done: 9, failed: 1 },
          ],
        },
      ],
    }
    const data = await chartData('day', day, workers, Date.parse('2026-11-30T10:20:00Z'))
    expect(data.step).toBe(900_000)
    expect(data.buckets[0]).toEqual({ at: '2026-11-30T10:00:00.000Z', created: 2, finished: 2, failed: 0, waiting: 1, inProgress: null, p50: 120, p95: 120 })
    expect(data.workers).toEqual([{ address: 'w:1', perSecond: [0.1, 0.01] }])
    expect(data.problems).toEqual([])
  })

  test('a master without history and a kv that cannot be read are said, not thrown', async () => {
    const none: ConsoleSource = {
      ...source([bucket('2026-11-30T10:00:00.000Z', 1)], 60_000),
      history: async () => Promise.reject(new Error('no /history here')),
    }
    const workers: WorkerDirectory = { list: async () => [], histories: async () => Promise.reject(new Error('kv unreachable')) }
    const data = await chartData('hour', none, workers)
    expect(data.buckets).toEqual([])
    expect(data.problems).toEqual(['The task history cannot be read: no /history here', 'The workers cannot be listed: kv unreachable'])
  })
})
