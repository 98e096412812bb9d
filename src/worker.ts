// Entry of the worker role: `bun run src/worker.ts <kv> <threads>`.
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMasterWorkerClient } from './clients/master-client.ts'
import { kvPeer } from './clients/peer-address.ts'
import { createStorageClient } from './clients/storage-client.ts'
import { createWorker, type WorkerStats } from './roles/worker/worker.ts'
import { dialable, parseWorkerArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'
import { kvWait, type RunningRole, runMain } from './shared/run-role.ts'

/** A running worker: no port, but counters for the launcher. */
export interface RunningWorker extends RunningRole {
  stats(): WorkerStats
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
      throw new Error(`worker: ${peer.key} not found in kv at ${kvClient.address} within ${settings.kvWaitSeconds} s (PIXMILL_KV_WAIT_SECONDS): ${(error as Error).message}`)
    }
  }
  const worker = createWorker({
    master: createMasterWorkerClient(masterPeer, fetcher),
    storage: createStorageClient(storagePeer, fetcher),
    threads,
    maxPixels: settings.maxPixels,
    pngEffort: settings.pngEffort,
    leaseSeconds: settings.leaseSeconds,
    taskTimeoutMs: settings.taskTimeoutSeconds * 1000,
    log,
  })
  worker.start()
  return { role: 'worker', stop: () => worker.close(), stats: () => worker.stats() }
}

if (import.meta.main) await runMain(() => startWorker(process.argv.slice(2)))
