// The worker's pull loops (BullMQ-like): claim, fetch, swap, store, report; renew the lease while working.
import type { ClaimedTask, MasterWorkerClient } from '../../clients/master-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import { sleep as abortableSleep, orAfter, timeoutSignal, untilAborted } from '../../shared/async.ts'
import { type Clock, systemClock } from '../../shared/clock.ts'
import { HttpError, NotOffered } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { withRequestId } from '../../shared/request-context.ts'
import { UnrecoverableImageError } from './errors.ts'
import { type ImageWorkOptions, type PngEffort, type StageRunner, swapRedGreen, untimedStage } from './image-work.ts'
import { createMinuteTally, type MinuteCount } from './minute-tally.ts'

export interface WorkerOptions {
  readonly master: MasterWorkerClient
  /** The worker reads working images and stores results; nothing else. */
  readonly storage: Pick<StorageClient, 'get' | 'send'>
  /** Concurrent loops. */
  readonly threads: number
  /** The most pixels one image may have; more fails the task. */
  readonly maxPixels: number
  /** PIXMILL_PNG_EFFORT. Default `fast`. */
  readonly pngEffort?: PngEffort
  /** The master's lease; a claim with a token is renewed every third of it. */
  readonly leaseSeconds: number
  readonly log: Logger
  /** Safety net for one task, claim to report, not counting its wait for the loop's codec. Default 300000 (5 min). */
  readonly taskTimeoutMs?: number
  /** Wait after a peer's failure, jittered by ±10 %. Default 2000. */
  readonly errorWaitMs?: number
  /**
   * Idle back-off when there is no task: starts at `initialMs`, doubles up to `maxMs`, each wait jittered by ±50 % so
   * that the loops do not poll in step. A loop that claims a task wakes the idle ones. Default 50 to 1000.
   */
  readonly idle?: { readonly initialMs: number; readonly maxMs: number }
  /**
   * A claim is held by the master until a task can be claimed or this many seconds pass (`getNewTask?wait=`), so that
   * an idle worker hears of a new task at once; 0 polls with back-off (see `idle`). Default 20.
   */
  readonly claimWaitSeconds?: number
  /** How long close() lets tasks in flight finish before releasing them back to the queue. Default 20000. */
  readonly closeTimeoutMs?: number
  /** The image work; injectable so tests can make it slow or failing. Default swapRedGreen. */
  readonly swap?: (png: Uint8Array, options: ImageWorkOptions) => Promise<Uint8Array<ArrayBuffer>>
  /** Runs each stage of a task (fetch, decode, encode, store, report): the worker's metrics and traces hook in here. */
  readonly stage?: StageRunner
  /** Runs each task's whole work, claim to report (tracing makes the task's span here). Default: just runs it. */
  readonly taskScope?: <T>(task: ClaimedTask, work: () => Promise<T>) => Promise<T>
  /** Time and every timer of the worker (waits, lease renewals, time limits, close()'s limit). Default systemClock. */
  readonly clock?: Clock
  readonly random?: () => number
}

/** Counters for the launcher: all since start. */
export interface WorkerStats {
  readonly processed: number
  readonly failed: number
  readonly peerErrors: number
  readonly abandoned: number
  readonly renewals: number
  readonly inFlight: number
  /** Claim-to-report milliseconds summed over processed tasks. */
  readonly processingMs: number
  /** Loops started (0 before start()). */
  readonly loops: number
  /** Loops with at least one task in flight. */
  readonly busyLoops: number
  /** When start() ran, in ms since the epoch (undefined before). */
  readonly startedAt: number | undefined
  /** When a task last ended (finished or failed), in ms since the epoch. */
  readonly lastTaskAt: number | undefined
  /** Why the last claim failed, while claims keep failing (the master is down); undefined once one succeeds. */
  readonly claimProblem: string | undefined
  /** close() has been called: no new claims. */
  readonly closing: boolean
}

export interface Worker {
  /** Starts the loops; a second call does nothing. */
  start(): void
  /** Stops claiming, wakes sleeping loops, waits (bounded) for tasks in flight. Idempotent. */
  close(): Promise<void>
  stats(): WorkerStats
  /** Tasks ended per minute since `since` (epoch ms), within the last day. */
  history(since: number): MinuteCount[]
}

/** The task's own time limit passed. */
class TaskTimedOut extends Error {
  override name = 'TaskTimedOut'
}

/** The task's work stops without a report: the lease was lost, or close() stopped waiting. */
class TaskAbandoned extends Error {
  override name = 'TaskAbandoned'
}

/**
 * A loop runs its tasks as a pipeline: while one task's image is in the codec, the task before stores and reports its
 * result and the loop claims and fetches the next (a few ms of HTTP per task that otherwise leave the codec idle between
 * images). A task waits for its turns: the codec once the loop's previous task is out of it, the store once the
 * previous task has stored and reported (one store in flight per loop, results in claim order).
 */
interface Turns {
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

const message = (error: unknown) => (error as Error)?.message ?? String(error)
/** A "no task" answer that took at least this long was held by the master (a long-poll), not answered at once. */
const HELD_CLAIM_MS = 1000

/** A peer answered 4xx to a call about this task, or does not offer the call (an original role): repeating it will not help. */
const isRefusal = (error: unknown) => error instanceof NotOffered || (error instanceof HttpError && error.status >= 400 && error.status < 500)

/** Creates the worker; nothing runs until start(). */
export function createWorker(options: WorkerOptions): Worker {
  const { master, storage, log } = options
  const swap = options.swap ?? swapRedGreen
  const stage = options.stage ?? untimedStage
  const taskScope = options.taskScope ?? ((_task, work) => work())
  const clock = options.clock ?? systemClock
  const sleep = (ms: number, signal?: AbortSignal) => abortableSleep(ms, signal, clock)
  const random = options.random ?? Math.random
  const taskTimeoutMs = options.taskTimeoutMs ?? 300_000
  const errorWaitMs = options.errorWaitMs ?? 2000
  const idle = options.idle ?? { initialMs: 50, maxMs: 1000 }
  const claimWaitSeconds = options.claimWaitSeconds ?? 20
  const leaseMs = options.leaseSeconds * 1000
  const imageOptions: ImageWorkOptions = {
    maxPixels: options.maxPixels,
    effort: options.pngEffort,
    timeoutSeconds: Math.min(3600, Math.max(1, Math.ceil(taskTimeoutMs / 1000))),
    stage,
  }
  const stopClaiming = new AbortController()
  const giveUp = new AbortController()
  const counts = { processed: 0, failed: 0, peerErrors: 0, abandoned: 0, renewals: 0, inFlight: 0, processingMs: 0 }
  /** Tasks in flight per loop. */
  const loopTasks: number[] = []
  let startedAt: number | undefined
  let lastTaskAt: number | undefined
  let claimProblem: string | undefined
  const minutes = createMinuteTally()
  let loops: Promise<void>[] | undefined
  let closing: Promise<void> | undefined

  const jittered = (ms: number, spread = 0.1) => Math.round(ms * (1 - spread + random() * 2 * spread))
  /** Aborted (and replaced) when a loop claims a task: where there was one there may be more. */
  let wake = new AbortController()

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
  async function runTask(task: ClaimedTask, turns: Turns, loopIndex: number): Promise<void> {
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
    const signal = AbortSignal.any([own.signal, giveUp.signal])
    const stopRenewing = keepLease(task, own)
    counts.inFlight++
    loopTasks[loopIndex] = (loopTasks[loopIndex] ?? 0) + 1
    try {
      const failure = await attempt(task, signal, started, turns, limit)
      if (failure === undefined) {
        counts.processed++
        counts.processingMs += clock.now() - started
        lastTaskAt = clock.now()
        minutes.add('done', lastTaskAt)
        log.info({ task: task.id, ms: clock.now() - started }, 'task finished')
        return
      }
      counts.failed++
      lastTaskAt = clock.now()
      minutes.add('failed', lastTaskAt)
      log.warn({ task: task.id, reason: failure }, 'the task cannot succeed; reporting it failed')
      // Past the lease the report is moot (the task is back in the queue), so stop trying then.
      const reportSignal = AbortSignal.any([giveUp.signal, timeoutSignal(leaseMs, clock)])
      await withPeer('reporting the task failed', task, reportSignal, () => master.registerTaskFailed(task.id, failure, task.leaseToken))
    } catch (error) {
      counts.abandoned++
      if (giveUp.signal.aborted) {
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

  async function loop(n: number): Promise<void> {
    let idleMs = idle.initialMs
    /** Settles when every task this loop claimed has ended (the last one waits for the ones before to store). */
    let previous: Promise<void> = Promise.resolve()
    /** Resolves when the loop's latest task is out of the codec. */
    let codecFree: Promise<void> = Promise.resolve()
    while (!stopClaiming.signal.aborted) {
      let task: ClaimedTask | undefined
      const asked = clock.now()
      try {
        task = await master.getNewTask({ waitSeconds: claimWaitSeconds, signal: stopClaiming.signal })
        claimProblem = undefined
      } catch (error) {
        if (stopClaiming.signal.aborted) break
        counts.peerErrors++
        claimProblem = `asking the master for a task fails: ${message(error)}`
        log.warn({ loop: n, err: message(error) }, `asking the master for a task failed; retrying in ${errorWaitMs} ms`)
        await sleep(jittered(errorWaitMs), stopClaiming.signal)
        continue
      }
      if (task === undefined) {
        // Held and answered "none" when the wait ran out: ask again at once. Answered at once (a master of the original
        // protocol holds no claim): back off, as a worker polling must.
        if (claimWaitSeconds > 0 && clock.now() - asked >= HELD_CLAIM_MS) continue
        const woken = wake.signal
        await sleep(jittered(idleMs, 0.5), AbortSignal.any([stopClaiming.signal, woken]))
        idleMs = woken.aborted ? idle.initialMs : Math.min(idleMs * 2, idle.maxMs)
        continue
      }
      idleMs = idle.initialMs
      wake.abort()
      wake = new AbortController()
      const claimed = task
      const priorCodec = codecFree
      const priorStore = previous
      const inCodec = Promise.withResolvers<void>()
      const outOfCodec = Promise.withResolvers<void>()
      codecFree = outOfCodec.promise
      const turns: Turns = {
        codec: () => priorCodec.then(inCodec.resolve),
        leaveCodec: outOfCodec.resolve,
        store: () => priorStore,
      }
      // Everything done for the task (logs, calls to peers) carries the request id of the upload that made it.
      const ended = withRequestId(claimed.requestId ?? `task-${claimed.id}`, () => taskScope(claimed, () => runTask(claimed, turns, n))).finally(() => {
        inCodec.resolve()
        outOfCodec.resolve()
      })
      previous = Promise.all([priorStore, ended]).then(() => {})
      // The next claim once this task has the codec (or has ended) and the one before has reported: a loop holds at
      // most a task storing, one in the codec and one being fetched.
      await inCodec.promise
      await priorStore
    }
    await previous
  }

  return {
    start() {
      if (loops || closing) return
      log.info({ threads: options.threads }, 'worker started')
      startedAt = clock.now()
      loops = Array.from({ length: options.threads }, (_, n) => loop(n))
    },
    close() {
      closing ??= (async () => {
        stopClaiming.abort()
        const all = Promise.allSettled(loops ?? [])
        const drained = await orAfter(
          all.then(() => true),
          options.closeTimeoutMs ?? 20_000,
          false,
          clock,
        )
        if (!drained) {
          log.warn({ inFlight: counts.inFlight }, 'close: tasks still in flight after the limit; releasing them')
          giveUp.abort(new TaskAbandoned('the worker is closing'))
          await all
        }
        log.info(counts, 'worker stopped')
      })()
      return closing
    },
    history: (since) => minutes.since(since),
    stats: () => ({
      ...counts,
      loops: loops?.length ?? 0,
      busyLoops: loopTasks.filter((n) => n > 0).length,
      startedAt,
      lastTaskAt,
      claimProblem,
      closing: closing !== undefined,
    }),
  }
}
