// Entry of the database role: `bun run src/database.ts <self> <kv>`.
import { join } from 'node:path'
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createDatabaseApp } from './roles/database/app.ts'
import { openSqliteTaskStore } from './roles/database/sqlite-task-store.ts'
import { dialable, parseServiceArgs } from './shared/args.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'
import { type RunningRole, runMain, serveRole } from './shared/run-role.ts'

/** Starts the database role from its command-line arguments. */
export async function startDatabase(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { self, kv } = parseServiceArgs('database', argv)
  const log = createLogger('database')
  const store = openSqliteTaskStore(join(settings.dataDir, 'database'), settings)
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

if (import.meta.main) await runMain(() => startDatabase(process.argv.slice(2)))
