// `GET /wait`: clients wait for their tasks to end; one poll of the database behind every wait of a master.
import type { TaskRecord } from '../../clients/database-client.ts'
import { type Cancel, type Clock, systemClock } from '../../shared/clock.ts'
import { DependencyUnavailable, NotOffered } from '../../shared/errors.ts'
import { unknownTask } from '../../shared/task-key.ts'

export interface TaskWaitsOptions {
  /** The records of these tasks (unknown ids left out): one call to the database for all of them. */
  readonly records: (ids: readonly number[]) => Promise<Map<number, TaskRecord>>
  /** Least time between two polls. Default 250 ms: at most four database calls a second, however many wait. */
  readonly pollMs?: number
  /** Most ids asked for in one call. Default 500. */
  readonly batch?: number
  /** The polls' and the waits' timers. Default systemClock. */
  readonly clock?: Clock
}

export interface TaskWaits {
  /**
   * The task's record as soon as it is finished or failed, or after `timeoutMs` as it is then. NotFound for an unknown
   * id, and for a task that `allowed` refuses (a wrong task key), at the same poll and in the same words; `signal` (the
   * client going away) ends the wait.
   */
  wait(id: number, timeoutMs: number, signal?: AbortSignal, allowed?: (record: TaskRecord) => boolean): Promise<TaskRecord>
  /** A task changed through this master (finished, failed): polled again without waiting for the next round. */
  changed(id: number): void
  /** Clients waiting now. */
  size(): number
  /** Answers every wait with the task as last seen (the master is stopping). */
  close(): void
}

interface Waiter {
  readonly id: number
  readonly resolve: (record: TaskRecord) => void
  readonly reject: (error: unknown) => void
  /** Whether this waiter may see the task (its key); undefined: anyone may. */
  readonly allowed?: (record: TaskRecord) => boolean
  cancelTimer?: Cancel
  /** Its time is up but no record is known yet: answered by the next poll, whatever the state. */
  due: boolean
}

const ended = (record: TaskRecord) => record.state === 2 || record.state === 3

export function createTaskWaits(options: TaskWaitsOptions): TaskWaits {
  const pollMs = options.pollMs ?? 250
  const batch = options.batch ?? 500
  const clock = options.clock ?? systemClock
  const waiting = new Map<number, Set<Waiter>>()
  const last = new Map<number, TaskRecord>()
  let cancelPoll: Cancel | undefined
  let polling: Promise<void> | undefined
  let lastPollAt = -Infinity
  let closed = false

  const done = (waiter: Waiter) => {
    waiter.cancelTimer?.()
    const set = waiting.get(waiter.id)
    set?.delete(waiter)
    if (set?.size === 0) {
      waiting.delete(waiter.id)
      last.delete(waiter.id)
    }
  }
  /** Every answer goes through here, whatever made it (a poll, a timeout, a change, closing): so none skips the key. */
  const answer = (waiter: Waiter, record: TaskRecord) => {
    done(waiter)
    if (waiter.allowed && !waiter.allowed(record)) waiter.reject(unknownTask(waiter.id))
    else waiter.resolve(record)
  }

  /** Polls soon: at once if the last poll is older than pollMs, else when it is. */
  function schedule(): void {
    if (closed || cancelPoll || polling || waiting.size === 0) return
    // At most pollMs: the epoch clock may be set back.
    const inMs = Math.min(pollMs, Math.max(0, lastPollAt + pollMs - clock.now()))
    cancelPoll = clock.after(
      inMs,
      () => {
        cancelPoll = undefined
        polling = poll().finally(() => {
          polling = undefined
          schedule()
        })
      },
      { unref: true },
    )
  }

  async function poll(): Promise<void> {
    lastPollAt = clock.now()
    const ids = [...waiting.keys()]
    for (let i = 0; i < ids.length; i += batch) {
      const chunk = ids.slice(i, i + batch)
      let records: Map<number, TaskRecord>
      try {
        records = await options.records(chunk)
      } catch (error) {
        // A database that cannot tell (an original one): nothing to wait for. Down: the waits go on, the next round asks.
        if (error instanceof NotOffered) {
          for (const id of chunk) {
            for (const waiter of [...(waiting.get(id) ?? [])]) {
              done(waiter)
              waiter.reject(error)
            }
          }
        }
        continue
      }
      for (const id of chunk) {
        const record = records.get(id)
        const waiters = [...(waiting.get(id) ?? [])]
        if (!record) {
          for (const waiter of waiters) {
            done(waiter)
            waiter.reject(unknownTask(id))
          }
          continue
        }
        last.set(id, record)
        // A waiter that may not see the task is told at its first poll, as one for an unknown id would be.
        for (const waiter of waiters) if (ended(record) || waiter.due || (waiter.allowed && !waiter.allowed(record))) answer(waiter, record)
      }
    }
  }

  return {
    wait(id, timeoutMs, signal, allowed) {
      return new Promise<TaskRecord>((resolve, reject) => {
        const waiter: Waiter = { id, resolve, reject, allowed, due: false }
        if (closed) return reject(new DependencyUnavailable('The master is stopping; ask another or again.'))
        let set = waiting.get(id)
        if (!set) {
          set = new Set()
          waiting.set(id, set)
        }
        set.add(waiter)
        waiter.cancelTimer = clock.after(timeoutMs, () => {
          const record = last.get(id)
          if (record) answer(waiter, record)
          else waiter.due = true
        })
        signal?.addEventListener('abort', () => done(waiter), { once: true })
        schedule()
      })
    },
    changed(id) {
      if (!waiting.has(id)) return
      // Not rate-limited: the change is news, and it is one task.
      void options.records([id]).then(
        (records) => {
          const record = records.get(id)
          if (record && ended(record)) for (const waiter of [...(waiting.get(id) ?? [])]) answer(waiter, record)
        },
        () => {},
      )
    },
    size: () => [...waiting.values()].reduce((n, set) => n + set.size, 0),
    close() {
      closed = true
      cancelPoll?.()
      for (const [id, set] of waiting) {
        for (const waiter of [...set]) {
          const record = last.get(id)
          if (record) answer(waiter, record)
          else {
            done(waiter)
            waiter.reject(new DependencyUnavailable('The master is stopping; ask another or again.'))
          }
        }
      }
    },
  }
}
