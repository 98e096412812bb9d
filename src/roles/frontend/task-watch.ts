// Live task states for the page: one shared poll of the master per watched task, however many pages watch it.
import type { TaskReadiness, TaskStatus } from '../../clients/master-public-client.ts'
import { HttpError } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'

/** What a watching page is told. */
export type WatchEvent =
  | { readonly type: 'status'; readonly task: TaskStatus | TaskReadiness }
  | { readonly type: 'unknown'; readonly id: number }
  /** The master cannot be asked right now; the watch keeps trying with back-off. */
  | { readonly type: 'trouble'; readonly message: string }
  | { readonly type: 'recovered' }
  /** The frontend is stopping: the page should reconnect later. */
  | { readonly type: 'closing' }

export type WatchListener = (event: WatchEvent) => void

/** A task to watch, with the key of its private result when it has one. */
export interface WatchTarget {
  readonly id: number
  readonly key?: string
}

export interface TaskWatchOptions {
  /** Asks the master for one task's state (with its key, when the page gave one). */
  readonly status: (id: number, key: string | undefined) => Promise<TaskStatus | TaskReadiness>
  /** Poll interval right after a change or a new task. Default 500 ms. */
  readonly minIntervalMs?: number
  /** Poll interval after a long time without change, and while the master is down. Default 5000 ms. */
  readonly maxIntervalMs?: number
  /** Most status calls in flight at once. Default 8. */
  readonly concurrency?: number
  readonly log?: Logger
}

export interface TaskWatch {
  /**
   * Sends `listener` each watched task's state now (when known) and on every change; returns the unsubscribe. A task is
   * polled once for all the pages that watch it with the same key: a page with another key (a wrong one) is told apart.
   */
  subscribe(targets: readonly (number | WatchTarget)[], listener: WatchListener): () => void
  /** How many tasks are watched, for the metrics. */
  size(): number
  /** Tells every listener the end, stops polling. */
  close(): void
}

interface Entry {
  readonly id: number
  readonly key: string | undefined
  readonly listeners: Set<WatchListener>
  last?: WatchEvent
  lastKey?: string
  /** Finished or unknown: nothing more will change, so it is not polled again. */
  settled: boolean
}

const FINISHED = 2

/** A watch whose polling slows down while nothing changes (x1.5 per quiet round) and speeds up on any change. */
export function createTaskWatch(options: TaskWatchOptions): TaskWatch {
  const min = options.minIntervalMs ?? 500
  const max = options.maxIntervalMs ?? 5000
  const concurrency = options.concurrency ?? 8
  /** By id, and key when there is one: pages that watch one task with different keys never share what they are told. */
  const entries = new Map<string, Entry>()
  const entryName = ({ id, key }: WatchTarget) => (key === undefined ? String(id) : `${id} ${key}`)
  let interval = min
  let timer: ReturnType<typeof setTimeout> | undefined
  let dueAt = Infinity
  let polling = false
  let pollAgain = false
  let trouble: string | undefined
  let closed = false

  const send = (listeners: Iterable<WatchListener>, event: WatchEvent) => {
    for (const listener of listeners) {
      try {
        listener(event)
      } catch (error) {
        options.log?.warn({ err: (error as Error).message }, 'a task watch listener failed')
      }
    }
  }
  const allListeners = () => new Set([...entries.values()].flatMap((entry) => [...entry.listeners]))

  function schedule(ms: number) {
    if (closed || performance.now() + ms >= dueAt) return
    clearTimeout(timer)
    dueAt = performance.now() + ms
    timer = setTimeout(() => {
      dueAt = Infinity
      void poll()
    }, ms)
    // A watch alone must not keep the process alive.
    timer.unref?.()
  }

  async function pollOne(entry: Entry): Promise<'changed' | 'same' | 'failed'> {
    const { id } = entry
    let event: WatchEvent
    try {
      const task = await options.status(id, entry.key)
      event = { type: 'status', task }
      if (task.state === FINISHED) entry.settled = true
    } catch (error) {
      if (!(error instanceof HttpError && error.status === 404)) {
        trouble ??= (error as Error).message
        return 'failed'
      }
      event = { type: 'unknown', id }
      entry.settled = true
    }
    const key = JSON.stringify(event)
    if (key === entry.lastKey) return 'same'
    entry.last = event
    entry.lastKey = key
    send(entry.listeners, event)
    return 'changed'
  }

  async function poll(): Promise<void> {
    if (polling) {
      pollAgain = true
      return
    }
    polling = true
    const hadTrouble = trouble
    trouble = undefined
    const due = [...entries.values()].filter((entry) => !entry.settled && entry.listeners.size > 0)
    const outcomes: string[] = []
    for (let i = 0; i < due.length; i += concurrency) {
      outcomes.push(...(await Promise.all(due.slice(i, i + concurrency).map(pollOne))))
    }
    polling = false
    if (trouble !== undefined) {
      if (hadTrouble === undefined) {
        options.log?.warn({ err: trouble }, 'cannot ask the master for task states; retrying')
        send(allListeners(), { type: 'trouble', message: 'The service cannot be reached right now; still trying.' })
      }
      interval = max
    } else {
      if (hadTrouble !== undefined) send(allListeners(), { type: 'recovered' })
      interval = outcomes.includes('changed') ? min : Math.min(max, Math.round(interval * 1.5))
    }
    if (closed) return
    if (pollAgain) {
      pollAgain = false
      schedule(0)
    } else if ([...entries.values()].some((entry) => !entry.settled && entry.listeners.size > 0)) schedule(interval)
  }

  return {
    subscribe(targets, listener) {
      let fresh = false
      const names = new Map<string, WatchTarget>()
      for (const target of targets) {
        const given = typeof target === 'number' ? { id: target } : target
        names.set(entryName(given), given)
      }
      for (const [name, { id, key }] of names) {
        let entry = entries.get(name)
        if (!entry) {
          entry = { id, key, listeners: new Set(), settled: false }
          entries.set(name, entry)
          fresh = true
        }
        entry.listeners.add(listener)
        if (entry.last) send([listener], entry.last)
        else fresh = true
      }
      if (trouble !== undefined) send([listener], { type: 'trouble', message: 'The service cannot be reached right now; still trying.' })
      if (fresh) {
        interval = min
        schedule(0)
      } else schedule(interval)
      return () => {
        for (const name of names.keys()) {
          const entry = entries.get(name)
          entry?.listeners.delete(listener)
          if (entry && entry.listeners.size === 0) entries.delete(name)
        }
      }
    },
    size: () => entries.size,
    close() {
      if (closed) return
      closed = true
      clearTimeout(timer)
      send(allListeners(), { type: 'closing' })
      entries.clear()
    },
  }
}
