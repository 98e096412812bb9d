// Entry of the database role: `bun run src/database.ts <self> <kv>`.
import { join } from 'node:path'
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createDatabaseApp } from './roles/database/app.ts'
import { openPostgresTaskStore, redactPostgresUrl } from './roles/database/postgres-task-store.ts'
import { openSqliteTaskStore } from './roles/database/sqlite-task-store.ts'
import type { TaskStore } from './roles/database/task-store.ts'
import { dialable, parseServiceArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger, type Logger } from './shared/logger.ts'
import { kvWait, type RunningRole, runMain, serveRole } from './shared/run-role.ts'

/** Starts the database role from its command-line arguments. */
export async function startDatabase(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { self, kv } = parseServiceArgs('database', argv)
  const log = createLogger('database')
  const store = await openTaskStore(settings, log)
  const app = createDatabaseApp({ store, log, registry: createMetricsRegistry('database'), token: settings.token, idleTimeoutSeconds: settings.idleTimeoutSeconds })
  return serveRole({
    role: 'database',
    app,
    listen: self,
    log,
    register: { kv: createKvClient(dialable(kv), createPeerFetch({ token: settings.token })), key: 'databaseAddress', value: dialable(self), waitSeconds: settings.kvWaitSeconds, ttlSeconds: settings.registrationTtlSeconds },
    close: () => store.close(),
  })
}

/**
 * PIXMILL_DATABASE_URL set: the tasks live in PostgreSQL (shared by every database instance), waiting for it at
 * start as for the kv store (PIXMILL_KV_WAIT_SECONDS); otherwise in bun:sqlite under the data folder.
 */
async function openTaskStore(settings: Settings, log: Logger): Promise<TaskStore> {
  if (settings.databaseUrl !== undefined) {
    const url = settings.databaseUrl
    log.info({ store: 'postgres', url: redactPostgresUrl(url) }, 'task store: PostgreSQL')
    return withBackoff(() => openPostgresTaskStore(url, { ...settings, log }), { ...kvWait(settings), what: `opening PostgreSQL at ${redactPostgresUrl(url)}`, log })
  }
  const dir = join(settings.dataDir, 'database')
  log.info({ store: 'sqlite', dir }, 'task store: bun:sqlite')
  return openSqliteTaskStore(dir, settings)
}

if (import.meta.main) await runMain(() => startDatabase(process.argv.slice(2)))
