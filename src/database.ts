// Entry of the database role: `bun run src/database.ts <self> <kv>`.
import { join } from 'node:path'
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { kvPeer } from './clients/peer-address.ts'
import { createStorageClient } from './clients/storage-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createDatabaseApp, createDatabaseClaimWaits } from './roles/database/app.ts'
import { createQueueSampler } from './roles/database/history.ts'
import { openPostgresTaskStore, redactPostgresUrl } from './roles/database/postgres-task-store.ts'
import { createRemoval } from './roles/database/removal.ts'
import { lowestAddressReports } from './roles/database/shared-figures.ts'
import { openSqliteTaskStore } from './roles/database/sqlite-task-store.ts'
import { removalMetrics } from './roles/database/task-metrics.ts'
import type { TaskStore } from './roles/database/task-store.ts'
import { runMain } from './runtime/run-main.ts'
import { kvWait, type RunningRole, serveRole } from './runtime/serve-role.ts'
import { dialable, parseServiceArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger, type Logger } from './shared/logger.ts'

/** Starts the database role from its command-line arguments. */
export async function startDatabase(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { self, kv: kvAddress } = parseServiceArgs('database', argv)
  const log = createLogger('database')
  const store = await openTaskStore(settings, log)
  const fetcher = createPeerFetch({ token: settings.token })
  const kv = createKvClient(dialable(kvAddress), fetcher)
  // Storage is found when the first removal needs it (it may well start after the database).
  const storage = createStorageClient(kvPeer(kv, 'storageAddress', { log }), fetcher)
  const registry = createMetricsRegistry('database')
  const removal = createRemoval({ store, images: storage, log, retentionSeconds: settings.retentionSeconds, ...removalMetrics(registry) })
  const claimWaits = createDatabaseClaimWaits(store)
  // The queue's depth for the charts' history, every 15 s.
  const sampler = createQueueSampler({ store, log })
  let selfAddress = dialable(self)
  const app = createDatabaseApp({
    store,
    removal,
    claimWaits,
    // PostgreSQL is shared by every instance: one of them exports its figures. bun:sqlite is this instance's alone.
    reportsSharedFigures: settings.databaseUrl === undefined ? undefined : lowestAddressReports(kv, 'databaseAddress', () => selfAddress),
    log,
    registry,
    token: settings.token,
    idleTimeoutSeconds: settings.idleTimeoutSeconds,
  })
  const running = await serveRole({
    role: 'database',
    app,
    listen: self,
    log,
    register: { kv, key: 'databaseAddress', value: dialable(self), waitSeconds: settings.kvWaitSeconds, ttlSeconds: settings.registrationTtlSeconds },
    close: async () => {
      await sampler.stop()
      await removal.stop()
      await store.close()
    },
  })
  selfAddress = selfAddress.replace(/:0$/, `:${running.port}`)
  removal.start()
  sampler.start()
  log.info({ retentionSeconds: settings.retentionSeconds, sweepEveryMs: removal.intervalMs() }, 'removal sweep started')
  return {
    ...running,
    // Claims held for a task are answered "none" first: a graceful stop waits for the requests in flight.
    stop() {
      claimWaits.close()
      return running.stop()
    },
  }
}

/**
 * PIXMILL_DATABASE_URL set: the tasks live in PostgreSQL (shared by every database instance), waiting for it at
 * start as for the kv store (PIXMILL_KV_WAIT_SECONDS); otherwise in bun:sqlite under the data folder.
 */
async function openTaskStore(settings: Settings, log: Logger): Promise<TaskStore> {
  if (settings.databaseUrl !== undefined) {
    const url = settings.databaseUrl
    log.info({ store: 'postgres', url: redactPostgresUrl(url) }, 'task store: PostgreSQL')
    return withBackoff(() => openPostgresTaskStore(url, { ...settings, log }), {
      ...kvWait(settings),
      what: `opening PostgreSQL at ${redactPostgresUrl(url)}`,
      log,
    })
  }
  const dir = join(settings.dataDir, 'database')
  log.info({ store: 'sqlite', dir, durability: settings.durability }, 'task store: bun:sqlite')
  return openSqliteTaskStore(dir, settings)
}

if (import.meta.main) await runMain('database', () => startDatabase(process.argv.slice(2)))
