// The worker's pull loops (BullMQ-like): claim tasks and pipeline them; each task's run (fetch, swap, store, report, lease) is task-run.ts.
import type { ClaimedTask, MasterWorkerClient } from '../../clients/master-client.ts'
import type { StorageClient } from '../../clients/storage-client.ts'
import { sleep as abortableSleep, orAfter } from '../../shared/async.ts'
import { type Clock, systemClock } from '../../shared/clock.ts'
import type { Logger } from '../../shared/logger.ts'
import { withRequestId } from '../../shared/request-context.ts'
import { type ImageWorkOptions, type PngEffort, type StageRunner, swapRedGreen, untimedStage } from './image-work.ts'
import { createMinuteTally, type MinuteCount } from './minute-tally.ts'
import { createTaskRunner, message, TaskAbandoned, type TaskCounts, type Turns } from './task-run.ts'

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

/** A "no task" answer that took at least this long was held by the master (a long-poll), not answered at once. */
const HELD_CLAIM_MS = 1000

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
  const counts: TaskCounts = { processed: 0, failed: 0, peerErrors: 0, abandoned: 0, renewals: 0, inFlight: 0, processingMs: 0 }
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

  const runTask = createTaskRunner({
    master,
    storage,
    log,
    swap,
    stage,
    imageOptions,
    clock,
    sleep,
    jittered,
    taskTimeoutMs,
    errorWaitMs,
    leaseMs,
    giveUp: giveUp.signal,
    counts,
    loopTasks,
    taskEnded: (outcome, at) => {
      lastTaskAt = at
      minutes.add(outcome, at)
    },
  })

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
