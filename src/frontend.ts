// Entry of the frontend role: `bun run src/frontend.ts <kv> [listen]` (listening on :8080 by default).
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMasterPublicClient } from './clients/master-public-client.ts'
import { kvPeer } from './clients/peer-address.ts'
import { createStorageClient } from './clients/storage-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createFrontendApp } from './roles/frontend/app.ts'
import { boardFeedOf } from './roles/frontend/board.ts'
import { createTaskWatch } from './roles/frontend/task-watch.ts'
import { createWorkerDirectory } from './roles/frontend/worker-directory.ts'
import { runMain } from './runtime/run-main.ts'
import { kvWait, type RunningRole, serveRole } from './runtime/serve-role.ts'
import { dialable, parseFrontendArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'

/** Starts the frontend role from its command-line arguments; it does not register in kv (nobody calls it but people). */
export async function startFrontend(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { kv: kvAddress, listen } = parseFrontendArgs(argv)
  const log = createLogger('frontend')
  const fetcher = createPeerFetch({ token: settings.token })
  const kv = createKvClient(dialable(kvAddress), fetcher)
  const masterPeer = kvPeer(kv, 'masterAddress', { log })
  await withBackoff(() => masterPeer.current(), { ...kvWait(settings), what: `finding masterAddress in kv at ${kv.address}`, log })
  const master = createMasterPublicClient(masterPeer, fetcher)
  const watch = createTaskWatch({ status: (id, key) => master.status(id, key), log })
  const workers = createWorkerDirectory(kv, fetcher)
  const boardFeed = boardFeedOf(master, workers)
  // A task's console page shows both its images, read from storage (found when first needed, as the database does).
  const storage = createStorageClient(kvPeer(kv, 'storageAddress', { log }), fetcher)
  const app = createFrontendApp({
    master,
    log,
    registry: createMetricsRegistry('frontend'),
    maxUploadBytes: settings.maxUploadBytes,
    maxUploadsInFlight: settings.maxUploadsInFlight,
    watch,
    workers,
    boardFeed,
    image: (id, area) => storage.get(id, area),
    token: settings.token,
    idleTimeoutSeconds: settings.idleTimeoutSeconds,
    privateResults: settings.privateResults,
    uploadsPerMinute: settings.uploadsPerMinute,
    trustProxy: settings.trustProxy,
    corsOrigins: settings.corsOrigins,
  })
  const running = await serveRole({ role: 'frontend', app, listen, log })
  return {
    ...running,
    // Open event streams never end by themselves; end them first, or a graceful stop would wait for them forever.
    stop() {
      watch.close()
      boardFeed.close()
      return running.stop()
    },
  }
}

if (import.meta.main) await runMain('frontend', () => startFrontend(process.argv.slice(2)))
