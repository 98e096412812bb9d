// The board's live feed: one read of the figures per interval, sent to every open board, however many there are.
import { type Cancel, type Clock, systemClock } from '../../shared/clock.ts'
import type { HistoryWindow } from './console-source.ts'

export type BoardFeedEvent =
  | { readonly type: 'board'; readonly data: unknown }
  | { readonly type: 'history'; readonly data: unknown }
  | { readonly type: 'trouble'; readonly message: string }
  /** The frontend is stopping: the stream should end (the page reconnects to another instance, or later). */
  | { readonly type: 'closing' }

export interface BoardFeedOptions {
  /** What `/api/board` answers. */
  readonly board: () => Promise<unknown>
  /** What `/api/history?window=` answers. */
  readonly history: (window: HistoryWindow) => Promise<unknown>
  /** How often the counts, lists and workers are read. Default 3000. */
  readonly boardEveryMs?: number
  /** How often the charts' figures are read (they change by the minute). Default 15000. */
  readonly historyEveryMs?: number
  /** The reads' timers. Default systemClock. */
  readonly clock?: Clock
}

export interface BoardFeed {
  /** Sends the latest figures at once, then every change of them; returns the unsubscribe. */
  subscribe(window: HistoryWindow, send: (event: BoardFeedEvent) => void): () => void
  /** Open subscriptions. */
  size(): number
  /** Stops the reads and tells every subscriber `closing`. */
  close(): void
}

interface Subscriber {
  readonly window: HistoryWindow
  readonly send: (event: BoardFeedEvent) => void
}

/**
 * Reads run only while someone watches, each on its own timer; a read still under way is not started again. A new
 * subscriber gets the last figures at once (or a read of its own when there are none yet), so a board never waits a
 * whole interval for its first picture.
 */
export function createBoardFeed(options: BoardFeedOptions): BoardFeed {
  const boardEveryMs = options.boardEveryMs ?? 3000
  const historyEveryMs = options.historyEveryMs ?? 15_000
  const subscribers = new Set<Subscriber>()
  let lastBoard: BoardFeedEvent | undefined
  const lastHistory = new Map<HistoryWindow, BoardFeedEvent>()
  const clock = options.clock ?? systemClock
  let timers: Cancel[] = []
  let closed = false

  const trouble = (error: unknown): BoardFeedEvent => ({ type: 'trouble', message: (error as Error)?.message ?? String(error) })

  let readingBoard: Promise<void> | undefined
  const readBoard = () =>
    (readingBoard ??= options
      .board()
      .then((data): BoardFeedEvent => ({ type: 'board', data }), trouble)
      .then((event) => {
        if (event.type === 'board') lastBoard = event
        for (const subscriber of subscribers) subscriber.send(event)
      })
      .finally(() => (readingBoard = undefined)))

  const readingHistory = new Map<HistoryWindow, Promise<void>>()
  const readHistory = (window: HistoryWindow) => {
    const running = readingHistory.get(window)
    if (running) return running
    const read = options
      .history(window)
      .then((data): BoardFeedEvent => ({ type: 'history', data }), trouble)
      .then((event) => {
        if (event.type === 'history') lastHistory.set(window, event)
        for (const subscriber of subscribers) if (subscriber.window === window) subscriber.send(event)
      })
      .finally(() => readingHistory.delete(window))
    readingHistory.set(window, read)
    return read
  }

  const start = () => {
    if (timers.length > 0 || closed) return
    timers = [
      clock.every(boardEveryMs, () => void readBoard(), { unref: true }),
      clock.every(
        historyEveryMs,
        () => {
          for (const window of new Set([...subscribers].map((s) => s.window))) void readHistory(window)
        },
        { unref: true },
      ),
    ]
  }
  const stop = () => {
    for (const cancel of timers) cancel()
    timers = []
    // Figures kept while nobody watched would be stale for the next board: it reads afresh.
    lastBoard = undefined
    lastHistory.clear()
  }

  return {
    subscribe(window, send) {
      const subscriber = { window, send }
      subscribers.add(subscriber)
      start()
      if (lastBoard) send(lastBoard)
      else void readBoard()
      const history = lastHistory.get(window)
      if (history) send(history)
      else void readHistory(window)
      return () => {
        subscribers.delete(subscriber)
        if (subscribers.size === 0) stop()
      }
    },
    size: () => subscribers.size,
    close() {
      closed = true
      stop()
      for (const subscriber of [...subscribers]) subscriber.send({ type: 'closing' })
      subscribers.clear()
    },
  }
}
