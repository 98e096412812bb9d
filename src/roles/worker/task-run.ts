// One claimed task of the worker, claim to report: its turns in the loop's pipeline, its time limit, its lease and its peers.
import type { ClaimedTask, MasterWorkerClient } from '../../clients/master-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import { timeoutSignal, untilAborted } from '../../shared/async.ts'
import type { Clock } from '../../shared/clock.ts'
import { HttpError, NotOffered } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { UnrecoverableImageError } from './errors.ts'
import type { ImageWorkOptions, StageRunner } from './image-work.ts'

/** The task's own time limit passed. */
class TaskTimedOut extends Error {
  override name = 'TaskTimedOut'
}

/** The task's work stops without a report: the lease was lost, or close() stopped waiting. */
export class TaskAbandoned extends Error {
  override name = 'TaskAbandoned'
}

/**
 * A loop runs its tasks as a pipeline: while one task's image is in the codec, the task before stores and reports its
 * result and the loop claims and fetches the next (a few ms of HTTP per task that otherwise leave the codec idle between
 * images). A task waits for its turns: the codec once the loop's previous task is out of it, the store once the
 * previous task has stored and reported (one store in flight per loop, results in claim order).
 */
export interface Turns {
  /** Resolves when the loop's previous task is done with the codec; the loop then claims its next task. */
  codec(): Promise<void>
  /** This task is done with the codec (called when its result is ready; ending the task does it too). */
  leaveCodec(): void
  /** Resolves when the loop's previous task has stored and reported its result. */
  store(): Promise<void>
}

/** The task's time limit (PIXMILL_TASK_TIMEOUT_SECONDS): start() (re)starts it whole, stop() holds it. */
interface TaskClock {
  start(): void
  stop(): void
}

/** The worker's counters, shared with its loops and its stats. */
export interface TaskCounts {
  processed: number
  failed: number
  peerErrors: number
  abandoned: number
  renewals: number
  inFlight: number
  processingMs: number
}

export interface TaskRunDeps {
  readonly master: MasterWorkerClient
  readonly storage: Pick<StorageClient, 'get' | 'send'>
  readonly log: Logger
  readonly swap: (png: Uint8Array, options: ImageWorkOptions) => Promise<Uint8Array<ArrayBuffer>>
  readonly stage: StageRunner
  readonly imageOptions: ImageWorkOptions
  readonly clock: Clock
  readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>
  readonly jittered: (ms: number, spread?: number) => number
  readonly taskTimeoutMs: number
  readonly errorWaitMs: number
  readonly leaseMs: number
  /** Aborted when close() stops waiting for the tasks in flight. */
  readonly giveUp: AbortSignal
  readonly counts: TaskCounts
  /** Tasks in flight per loop. */
  readonly loopTasks: number[]
  /** A task finished (`done`) or was reported failed, at epoch ms `at`. */
  readonly taskEnded: (outcome: 'done' | 'failed', at: number) => void
}

export const message = (error: unknown) => (error as Error)?.message ?? String(error)

/** A peer answered 4xx to a call about this task, or does not offer the call (an original role): repeating it will not help. */
const isRefusal = (error: unknown) => error instanceof NotOffered || (error instanceof HttpError && error.status >= 400 && error.status < 500)

/** Runs one claimed task to its report; the answer never throws. */
export function createTaskRunner(deps: TaskRunDeps): (task: ClaimedTask, turns: Turns, loopIndex: number) => Promise<void> {
  const { master, storage, log, swap, stage, imageOptions, clock, sleep, jittered, taskTimeoutMs, errorWaitMs, leaseMs, giveUp, counts, loopTasks } = deps

  /** A hung promise cannot hold the loop: the task's signal ends the wait. */
  const bounded = untilAborted

  /** A call to a peer about a claimed task: retried after a peer failure (the lease is still ours), not after a refusal. */
  async function withPeer<T>(what: string, task: ClaimedTask, signal: AbortSignal, call: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await bounded(call(), signal)
      } catch (error) {
        if (signal.aborted || isRefusal(error)) throw error
        counts.peerErrors++
        log.warn({ task: task.id, err: message(error) }, `${what} failed; retrying in ${errorWaitMs} ms`)
        await sleep(jittered(errorWaitMs), signal)
      }
    }
  }

  /** Renews the lease every third of it; a refused renewal means the task is someone else's now. */
  function keepLease(task: ClaimedTask, lost: AbortController): () => void {
    const token = task.leaseToken
    if (token === undefined) return () => {}
    const stop = clock.every(
      leaseMs / 3,
      () => {
        master.renewTask(task.id, token).then(
          () => void counts.renewals++,
          (error) => {
            if (error instanceof NotOffered) {
              // A master of the original protocol: the task simply has its whole lease, as there.
              log.info({ task: task.id, err: message(error) }, 'the master does not renew leases; working without renewal')
              return stop()
            }
            log.warn({ task: task.id, err: message(error) }, 'renewing the lease failed')
            if (isRefusal(error)) lost.abort(new TaskAbandoned(`lease lost: ${message(error)}`))
          },
        )
      },
      { unref: true },
    )
    return stop
  }

  /**
   * Fetch, swap, store, report finished, each in its turn (see Turns). Resolves undefined when finished, or with the
   * reason the task cannot succeed.
   */
  async function attempt(task: ClaimedTask, signal: AbortSignal, started: number, turns: Turns, limit: TaskClock): Promise<string | undefined> {
    const refused = (what: string) => (error: unknown) => {
      if (isRefusal(error)) return `${what}: ${message(error)}`
      throw error
    }
    const png = await stage('fetch', () =>
      withPeer('fetching the working image', task, signal, async () => (await storage.get(task.id, 'working', { signal })).bytes()),
    ).catch(refused('the working image cannot be fetched'))
    if (typeof png === 'string') return png
    limit.stop()
    await bounded(turns.codec(), signal)
    limit.start()
    let result: Uint8Array<ArrayBuffer>
    try {
      result = await bounded(swap(png, imageOptions), signal)
    } catch (error) {
      if (error instanceof UnrecoverableImageError || error instanceof TaskTimedOut) return message(error)
      throw error
    }
    turns.leaveCodec()
    await bounded(turns.store(), signal)
    const stored = await stage('store', () =>
      withPeer('storing the finished image', task, signal, () => storage.send(task.id, 'finished', result, { contentLength: result.byteLength, signal })),
    ).catch(refused('storage refused the result'))
    if (typeof stored === 'string') return stored
    const ms = clock.now() - started
    await stage('report', () => withPeer('reporting the task finished', task, signal, () => master.registerTaskFinished(task.id, task.leaseToken, ms)))
    return undefined
  }

  /** Runs one claimed task to its report; never throws. */
  return async function runTask(task: ClaimedTask, turns: Turns, loopIndex: number): Promise<void> {
    const started = clock.now()
    const own = new AbortController()
    let cancelLimit = () => {}
    // The time limit is the task's own work: it stops while the task waits for its loop's codec, which the task
    // before may hold for up to its own limit.
    const limit: TaskClock = {
      start() {
        cancelLimit()
        cancelLimit = clock.after(taskTimeoutMs, () => own.abort(new TaskTimedOut(`the task took longer than ${taskTimeoutMs} ms`)), { unref: true })
      },
      stop: () => cancelLimit(),
    }
    limit.start()
    const signal = AbortSignal.any([own.signal, giveUp])
    const stopRenewing = keepLease(task, own)
    counts.inFlight++
    loopTasks[loopIndex] = (loopTasks[loopIndex] ?? 0) + 1
    try {
      const failure = await attempt(task, signal, started, turns, limit)
      if (failure === undefined) {
        counts.processed++
        counts.processingMs += clock.now() - started
        deps.taskEnded('done', clock.now())
        log.info({ task: task.id, ms: clock.now() - started }, 'task finished')
        return
      }
      counts.failed++
      deps.taskEnded('failed', clock.now())
      log.warn({ task: task.id, reason: failure }, 'the task cannot succeed; reporting it failed')
      // Past the lease the report is moot (the task is back in the queue), so stop trying then.
      const reportSignal = AbortSignal.any([giveUp, timeoutSignal(leaseMs, clock)])
      await withPeer('reporting the task failed', task, reportSignal, () => master.registerTaskFailed(task.id, failure, task.leaseToken))
    } catch (error) {
      counts.abandoned++
      if (giveUp.aborted) {
        // Closing: hand the task back at once rather than leaving it to its lease.
        log.warn({ task: task.id }, 'closing: releasing the task so that another worker can take it now')
        await bounded(master.releaseTask(task.id, task.leaseToken), timeoutSignal(2000, clock)).catch((releaseError) =>
          log.warn({ task: task.id, err: message(releaseError) }, 'releasing the task failed; its lease will expire'),
        )
        return
      }
      if (error instanceof NotOffered) {
        // A master of the original protocol has no failed state: as the original worker did, leave it to the lease.
        log.warn({ task: task.id, err: message(error) }, 'the master cannot record a failure; leaving the task to its lease')
        return
      }
      // A peer down past the time limit, a lost lease or a refused report: the lease puts the task back.
      log.warn({ task: task.id, err: message(error) }, 'abandoning the task; its lease will expire')
    } finally {
      cancelLimit()
      stopRenewing()
      counts.inFlight--
      loopTasks[loopIndex]!--
    }
  }
}
