// The worker's own port: probes, metrics and a status for the board. It serves no work; the loops pull theirs.
import { ROOT_CONTEXT, SpanKind, type Tracer } from '@opentelemetry/api'
import { t } from 'elysia'
import type { ClaimedTask } from '../../clients/master-client.ts'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import type { Logger } from '../../shared/logger.ts'
import { Counter, Gauge, Histogram, type Registry } from '../../shared/prom.ts'
import { contextFromTraceparent, inSpan } from '../../shared/trace-context.ts'
import type { StageRunner } from './image-work.ts'
import type { MinuteCount } from './minute-tally.ts'
import type { WorkerStats } from './worker.ts'

/** What `/status` answers, and what the board shows of each worker. */
export const WorkerStatusJson = t.Object({
  address: t.String({ description: 'Where this worker answers (`host:port`), as registered in kv' }),
  loops: t.Integer({ description: 'Task loops running' }),
  busy: t.Integer({ description: 'Loops with a task in flight' }),
  inFlight: t.Integer({ description: 'Tasks in flight (a loop fetches the next while it encodes and stores the one before)' }),
  done: t.Integer({ description: 'Tasks finished since start' }),
  failed: t.Integer({ description: 'Tasks reported failed since start' }),
  abandoned: t.Integer({ description: 'Tasks left to their lease (lost lease, a peer down too long) or released when stopping' }),
  startedAt: t.Nullable(t.String({ format: 'date-time' })),
  lastTaskAt: t.Nullable(t.String({ format: 'date-time', description: 'When a task last ended, finished or failed' })),
  problem: t.Nullable(t.String({ description: 'Why it cannot get work now (the master unreachable), or null' })),
})

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString())

/**
 * The histogram of stage times and the runner that feeds it: made before the worker (whose loops run every stage
 * through it) and the app (whose registry holds it).
 */
export function stageMetrics(registry: Registry, inner: StageRunner = (_stage, work) => work()): StageRunner {
  const seconds = new Histogram({
    name: 'pixmill_worker_stage_seconds',
    help: 'Time per stage of a task: fetch (the working image), decode, encode, store (the result), report (finished).',
    labelNames: ['stage'],
    // From a 1 px image's encode to a 50 Mpx decode.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  })
  return async (stage, work) => {
    const end = seconds.startTimer({ stage })
    try {
      return await inner(stage, work)
    } finally {
      end()
    }
  }
}

/** Each stage as a span, child of the task's (its calls to peers carry it on). */
export function tracedStages(tracer: Tracer, inner: StageRunner): StageRunner {
  return (stage, work) => inSpan(tracer, stage, { attributes: { 'pixmill.stage': stage } }, () => inner(stage, work))
}

/**
 * Each task as a span that continues the upload's trace (the `traceparent` the master stored with the task), or starts
 * one when the task has none (a master without tracing).
 */
export function tracedTasks(tracer: Tracer) {
  return <T>(task: ClaimedTask, work: () => Promise<T>) =>
    inSpan(
      tracer,
      'process task',
      { kind: SpanKind.CONSUMER, parent: contextFromTraceparent(task.traceparent) ?? ROOT_CONTEXT, attributes: { 'pixmill.task.id': task.id } },
      work,
    )
}

/** The worker's figures as Prometheus reads them, from its counters at each scrape. */
function workerMetrics(registry: Registry, stats: () => WorkerStats): void {
  const gauge = (name: string, help: string, read: (s: WorkerStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(stats()))
      },
    })
  new Counter({
    name: 'pixmill_worker_tasks_total',
    help: 'Tasks this worker ended, by outcome: finished, failed (reported), abandoned (left to the lease or released).',
    labelNames: ['outcome'],
    registers: [registry],
    collect() {
      const now = stats()
      this.reset()
      this.inc({ outcome: 'finished' }, now.processed)
      this.inc({ outcome: 'failed' }, now.failed)
      this.inc({ outcome: 'abandoned' }, now.abandoned)
    },
  })
  new Counter({
    name: 'pixmill_worker_peer_errors_total',
    help: 'Calls to the master or the storage that failed and were retried.',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(stats().peerErrors)
    },
  })
  gauge('pixmill_worker_loops', 'Task loops running.', (s) => s.loops)
  gauge('pixmill_worker_busy_loops', 'Loops with a task in flight.', (s) => s.busyLoops)
  gauge('pixmill_worker_tasks_in_flight', 'Tasks in flight across the loops.', (s) => s.inFlight)
}

export const WorkerHistoryJson = t.Object({
  minutes: t.Array(t.Object({ at: t.String({ format: 'date-time', description: 'The minute’s start' }), done: t.Integer(), failed: t.Integer() }), {
    description: 'Minutes with tasks ended, oldest first; a quiet minute is left out',
  }),
})

const DAY_MS = 24 * 60 * 60 * 1000

export interface WorkerAppDeps {
  readonly stats: () => WorkerStats
  /** Tasks ended per minute since a time (epoch ms), within the last day. Default: none kept. */
  readonly history?: (since: number) => MinuteCount[]
  readonly now?: () => number
  /** The address the worker registers in kv, which `/status` names. */
  readonly address: () => string
  readonly log: Logger
  readonly registry: Registry
  /** Whether the master and the storage answer (their /health); the worker is ready only when both do. */
  readonly peersHealthy?: () => Promise<{ readonly master: boolean; readonly storage: boolean }>
  readonly token?: string
  readonly idleTimeoutSeconds?: number
}

/** Builds the worker's app; it never listens (the entry file or the launcher does). */
export function createWorkerApp({ stats, address, log, registry, token, idleTimeoutSeconds, peersHealthy, history = () => [], now = Date.now }: WorkerAppDeps) {
  workerMetrics(registry, stats)
  const app = roleKit({
    role: 'worker',
    token,
    idleTimeoutSeconds,
    description:
      'A worker pulls its tasks from the master; this port only says how it does: `/status` (what the board shows), ' +
      '`/metrics` (tasks by outcome, busy loops, time per stage) and the probes.',
    log,
    registry,
    // Ready while it can take work: not stopping, and both peers answer. (Its own failed claims are no measure: a claim
    // is held up to 20 s, so the first one after the master returns would keep it unready that long.)
    health: async () => {
      const peers = (await peersHealthy?.()) ?? { master: true, storage: true }
      const reasons = [
        ...(stats().closing ? ['stopping: claims no new task'] : []),
        ...(peers.master ? [] : ['the master does not answer']),
        ...(peers.storage ? [] : ['the storage does not answer']),
      ]
      return { ok: reasons.length === 0, ...(reasons.length > 0 ? { reasons } : {}) }
    },
  })
    .get(
      '/status',
      () => {
        const now = stats()
        return {
          address: address(),
          loops: now.loops,
          busy: now.busyLoops,
          inFlight: now.inFlight,
          done: now.processed,
          failed: now.failed,
          abandoned: now.abandoned,
          startedAt: iso(now.startedAt),
          lastTaskAt: iso(now.lastTaskAt),
          problem: now.claimProblem ?? (now.closing ? 'stopping' : null),
        }
      },
      // Open, as its /metrics is: the same figures, no task's data; the board reads them.
      { access: 'public', response: { 200: WorkerStatusJson }, detail: { summary: 'What this worker does: loops, busy, done, failed', tags: ['operations'] } },
    )
    .get(
      '/history',
      ({ query }) => {
        const since = Math.max(now() - DAY_MS, query.since === undefined ? now() - DAY_MS : Number(query.since))
        return { minutes: history(since).map((m) => ({ at: new Date(m.at).toISOString(), done: m.done, failed: m.failed })) }
      },
      {
        access: 'public',
        query: t.Object({
          since: t.Optional(
            t.String({
              pattern: '^[0-9]{1,15}$',
              error: 'since must be epoch milliseconds',
              description: 'Epoch milliseconds; default (and at most) a day ago',
            }),
          ),
        }),
        response: { 200: WorkerHistoryJson },
        detail: { summary: 'Tasks this worker ended per minute, for the last day (the board’s chart of images per second)', tags: ['operations'] },
      },
    )
  return finishRole(app)
}
