// Entry of the master role: `bun run src/master.ts <self> <kv>`.
import { createDatabaseClient } from './clients/database-client.ts'
import { createPeerFetch, peerTransport } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { kvPeer, peerHealthy } from './clients/peer-address.ts'
import { createStorageClient } from './clients/storage-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createMasterApp, databaseRecords } from './roles/master/app.ts'
import { createTaskWaits } from './roles/master/task-waits.ts'
import { runMain } from './runtime/run-main.ts'
import { kvWait, type RunningRole, serveRole } from './runtime/serve-role.ts'
import { dialable, parseServiceArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'

/** Starts the master role from its command-line arguments. */
export async function startMaster(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { self, kv: kvAddress } = parseServiceArgs('master', argv)
  const log = createLogger('master')
  const fetcher = createPeerFetch({ token: settings.token })
  const kv = createKvClient(dialable(kvAddress), fetcher)
  const databasePeer = kvPeer(kv, 'databaseAddress', { log })
  const storagePeer = kvPeer(kv, 'storageAddress', { log })
  // Wait at start until both peers are registered, with the same bounded back-off as registration.
  for (const peer of [databasePeer, storagePeer]) {
    await withBackoff(() => peer.current(), { ...kvWait(settings), what: `finding ${peer.key} in kv at ${kv.address}`, log })
  }
  const database = createDatabaseClient(databasePeer, fetcher)
  const taskWaits = createTaskWaits({ records: databaseRecords(database) })
  const app = createMasterApp({
    taskWaits,
    database,
    storage: createStorageClient(storagePeer, fetcher),
    log,
    registry: createMetricsRegistry('master'),
    maxUploadBytes: settings.maxUploadBytes,
    uploadTimeoutSeconds: settings.uploadTimeoutSeconds,
    maxUploadsInFlight: settings.maxUploadsInFlight,
    token: settings.token,
    idleTimeoutSeconds: settings.idleTimeoutSeconds,
    privateResults: settings.privateResults,
    uploadsPerMinute: settings.uploadsPerMinute,
    trustProxy: settings.trustProxy,
    corsOrigins: settings.corsOrigins,
    dependenciesHealthy: async () => {
      const [database, storage] = await Promise.all([peerHealthy(databasePeer, peerTransport), peerHealthy(storagePeer, peerTransport)])
      return { database, storage }
    },
  })
  const running = await serveRole({
    role: 'master',
    app,
    listen: self,
    log,
    register: { kv, key: 'masterAddress', value: dialable(self), waitSeconds: settings.kvWaitSeconds, ttlSeconds: settings.registrationTtlSeconds },
  })
  return {
    ...running,
    // Waits are answered first (with the task as last seen): a graceful stop waits for the requests in flight.
    stop() {
      taskWaits.close()
      return running.stop()
    },
  }
}

if (import.meta.main) await runMain('master', () => startMaster(process.argv.slice(2)))
