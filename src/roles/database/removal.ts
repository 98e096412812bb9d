// Removing tasks with their images, in an order that no crash can make visible: the retention sweep and operators' deletes.
import { type Cancel, type Clock, systemClock } from '../../shared/clock.ts'
import { DependencyUnavailable, NotOffered } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { HELD_TASK_TTL_MS, type TaskStore } from './task-store.ts'

/** Where the images of a task go when it is removed: the storage role's `/deleteImage`. */
export interface ImageRemover {
  /** Removes the image of (id, area); succeeds when there is none. NotOffered from a storage of the original protocol. */
  remove(id: number, area: 'working' | 'finished'): Promise<void>
}

export interface RemovalOptions {
  readonly store: TaskStore
  readonly images: ImageRemover
  readonly log: Logger
  /** PIXMILL_RETENTION_SECONDS: finished and failed tasks are removed this long after they ended; 0 keeps them. */
  readonly retentionSeconds: number
  /** Tasks marked per batch. Default 100. */
  readonly batchSize?: number
  /** Tasks whose images are removed at once. Default 8. */
  readonly concurrency?: number
  /** Epoch milliseconds; injected so that tests move time instead of sleeping. Default the clock's. */
  readonly now?: () => number
  /** The sweep's timer. Default systemClock. */
  readonly clock?: Clock
  /** Told of every task removed, and by what. */
  readonly onRemoved?: (count: number, by: 'sweep' | 'operator') => void
  /** Told when a sweep ends (its time, epoch ms), for the metrics. */
  readonly onSweep?: (at: number) => void
}

export interface Removal {
  /** Removes everything due now, batch after batch; resolves to how many tasks went. Sweeps never overlap. */
  sweep(): Promise<number>
  /**
   * An operator's delete: NotFound, or Conflict for a task waiting or in progress (which stays as it was); otherwise
   * the task is gone from every read at once, then its images, then its record. If storage fails, the task stays out of
   * sight and a later sweep (or the same call again) completes it.
   */
  remove(id: number): Promise<void>
  /** Sweeps every `intervalMs()` from now on. */
  start(): void
  /** Stops sweeping; waits for a sweep in flight. */
  stop(): Promise<void>
  /** How often it sweeps: a third of the retention, at least every second and at most every minute. */
  intervalMs(): number
}

/**
 * The order of a removal: (1) mark the task (from then on every read answers 404 and no worker can get it), (2)
 * remove its images through storage, (3) delete its record. A crash after (1) leaves a marked task, which a later
 * sweep takes up (the mark is a lease); a crash after (2) leaves a record without images that no read shows. So a
 * finished task never answers `/isReady` 1 without its image, and no image outlives its record for good.
 */
export function createRemoval(options: RemovalOptions): Removal {
  const { store, images, log } = options
  const clock = options.clock ?? systemClock
  const now = options.now ?? clock.now
  const retentionMs = options.retentionSeconds * 1000
  const batchSize = options.batchSize ?? 100
  const concurrency = options.concurrency ?? 8
  let sweeping: Promise<number> | undefined
  let timer: Cancel | undefined
  let failing = false
  let saidNotOffered = false

  /** Removes both images of each task; answers the tasks whose images are gone (an original storage counts as gone). */
  async function removeImages(ids: readonly number[]): Promise<number[]> {
    const done: number[] = []
    const queue = [...ids]
    const work = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        try {
          await images.remove(id, 'finished')
          await images.remove(id, 'working')
          done.push(id)
        } catch (error) {
          if (error instanceof NotOffered) {
            // Nothing to do about it: an original storage keeps every image for ever anyway.
            if (!saidNotOffered) log.warn({ err: error.message }, 'storage cannot remove images (an original storage); removing the task records only')
            saidNotOffered = true
            done.push(id)
            continue
          }
          if (!failing) log.warn({ id, err: (error as Error).message }, 'removing the images of a task failed; it stays out of sight and is tried again')
          failing = true
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, ids.length) }, work))
    return done
  }

  /**
   * Images, then records; the tasks whose images could not be removed are handed back to the next sweep. Answers how
   * many had their images removed and how many records went (fewer, where another sweeper finished first).
   */
  async function complete(ids: readonly number[]): Promise<{ imagesGone: number; removed: number }> {
    const done = await removeImages(ids)
    const left = ids.filter((id) => !done.includes(id))
    if (left.length > 0) await store.releaseRemoval(left)
    return { imagesGone: done.length, removed: done.length === 0 ? 0 : await store.removeMarked(done) }
  }

  async function sweepOnce(): Promise<number> {
    let removed = 0
    for (;;) {
      const t = now()
      const ids = await store.markForRemoval({ endedBefore: retentionMs > 0 ? t - retentionMs : undefined, heldBefore: t - HELD_TASK_TTL_MS, limit: batchSize })
      if (ids.length === 0) break
      const { imagesGone, removed: gone } = await complete(ids)
      removed += gone
      // Storage is failing: the rest waits for the next sweep rather than being marked and handed back now.
      if (imagesGone < ids.length) break
      if (failing) log.info('removing images works again')
      failing = false
    }
    if (removed > 0) {
      options.onRemoved?.(removed, 'sweep')
      log.info({ removed }, 'sweep removed tasks and their images')
    }
    options.onSweep?.(now())
    return removed
  }

  const removal: Removal = {
    sweep() {
      sweeping ??= sweepOnce().finally(() => (sweeping = undefined))
      return sweeping
    },
    async remove(id) {
      await store.markOneForRemoval(id)
      if ((await complete([id])).imagesGone === 0) {
        // Out of sight already; a later sweep (or the same call again) completes it.
        throw new DependencyUnavailable(`Task ${id} is removed from view, but storage could not remove its images now; a later sweep will.`)
      }
      options.onRemoved?.(1, 'operator')
      log.info({ id }, 'task removed by an operator')
    },
    intervalMs: () => Math.min(60_000, Math.max(1000, Math.round(retentionMs / 3) || 60_000)),
    start() {
      if (timer) return
      timer = clock.every(
        removal.intervalMs(),
        () => {
          removal.sweep().catch((error) => {
            if (!failing) log.warn({ err: (error as Error).message }, 'a sweep failed; trying again at the next')
            failing = true
          })
        },
        { unref: true },
      )
    },
    async stop() {
      timer?.()
      timer = undefined
      await sweeping?.catch(() => {})
    },
  }
  return removal
}
