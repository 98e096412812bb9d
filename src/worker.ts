// Entry of the worker role: `bun run src/worker.ts <kv> <threads>`; its port is PIXMILL_WORKER_LISTEN.

import { hostname } from 'node:os'
import { createPeerFetch, peerTransport } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMasterWorkerClient } from './clients/master-client.ts'
import { kvPeer, peerHealthy } from './clients/peer-address.ts'
import { createStorageClient } from './clients/storage-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createWorkerApp, stageMetrics, tracedStages, tracedTasks } from './roles/worker/app.ts'
import { createWorker, type WorkerStats } from './roles/worker/worker.ts'
import { runMain } from './runtime/run-main.ts'
import { kvWait, type RunningRole, serveRole } from './runtime/serve-role.ts'
import { type Address, dialable, parseWorkerArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'
import { roleTracer, stopRoleTracer } from './shared/tracing.ts'

/** A running worker: its port (probes, metrics, status) and its counters. */
export interface RunningWorker extends RunningRole {
  stats(): WorkerStats
}

/** The address others reach the worker's port at: a port on every interface is registered under the machine's name. */
function advertised(listen: Address): string {
  const everywhere = ['0.0.0.0', '::', '[::]'].includes(listen.hostname)
  return everywhere ? `${hostname()}:${listen.port}` : dialable(listen)
}

/**
 * Starts the worker from its command-line arguments: waits (bounded, logged) until kv knows the master and the storage,
 * then runs `<threads>` loops. stop() claims no new task and lets the ones in flight finish.
 */
export async function startWorker(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningWorker> {
  const { kv, threads } = parseWorkerArgs(argv)
  const log = createLogger('worker')
  const fetcher = createPeerFetch({ token: settings.token })
  const kvClient = createKvClient(dialable(kv), fetcher)
  const masterPeer = kvPeer(kvClient, 'masterAddress', { log })
  const storagePeer = kvPeer(kvClient, 'storageAddress', { log })
  // Wait at start until both peers are registered, bounded by PIXMILL_KV_WAIT_SECONDS like every role.
  for (const peer of [masterPeer, storagePeer]) {
    try {
      await withBackoff(() => peer.current(), { ...kvWait(settings), what: `finding ${peer.key} in kv at ${kvClient.address}`, log })
    } catch (error) {
      throw new Error(
        `worker: ${peer.key} not found in kv at ${kvClient.address} within ${settings.kvWaitSeconds} s (PIXMILL_KV_WAIT_SECONDS): ${(error as Error).message}`,
      )
    }
  }
  const registry = createMetricsRegistry('worker')
  const tracer = roleTracer('worker')
  const worker = createWorker({
    master: createMasterWorkerClient(masterPeer, fetcher),
    storage: createStorageClient(storagePeer, fetcher),
    threads,
    maxPixels: settings.maxPixels,
    pngEffort: settings.pngEffort,
    leaseSeconds: settings.leaseSeconds,
    taskTimeoutMs: settings.taskTimeoutSeconds * 1000,
    stage: tracer === undefined ? stageMetrics(registry) : tracedStages(tracer, stageMetrics(registry)),
    taskScope: tracer === undefined ? undefined : tracedTasks(tracer),
    log,
  })
  let address = advertised(settings.workerListen)
  const app = createWorkerApp({
    stats: worker.stats,
    history: worker.history,
    address: () => address,
    peersHealthy: async () => {
      const [master, storage] = await Promise.all([peerHealthy(masterPeer, peerTransport), peerHealthy(storagePeer, peerTransport)])
      return { master, storage }
    },
    log,
    registry,
    token: settings.token,
    idleTimeoutSeconds: settings.idleTimeoutSeconds,
  })
  // Registered as `workerAddress/<self>` only, with the heartbeat every role has: the board lists the live workers.
  const served = await serveRole({
    role: 'worker',
    app,
    listen: settings.workerListen,
    log,
    register: {
      kv: kvClient,
      key: 'workerAddress',
      value: address,
      waitSeconds: settings.kvWaitSeconds,
      ttlSeconds: settings.registrationTtlSeconds,
      instanceOnly: true,
    },
  })
  address = address.replace(/:0$/, `:${served.port}`)
  worker.start()
  return {
    role: 'worker',
    port: served.port,
    // Loops first (tasks in flight finish and report), then the port and the registration.
    stop: async () => {
      await worker.close()
      await served.stop()
      await stopRoleTracer('worker')
    },
    stats: () => worker.stats(),
  }
}

if (import.meta.main) await runMain('worker', () => startWorker(process.argv.slice(2)))
