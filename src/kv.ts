// Entry of the kv role: `bun run src/kv.ts [listen]`.
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createKvApp } from './roles/kv/app.ts'
import { openSqliteKvStore } from './roles/kv/sqlite-kv-store.ts'
import { parseKvArgs } from './shared/args.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'
import { type RunningRole, runMain, serveRole } from './shared/run-role.ts'
import { join } from 'node:path'

/** Starts the kv role from its command-line arguments. */
export async function startKv(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { listen } = parseKvArgs(argv)
  const log = createLogger('kv')
  const store = openSqliteKvStore(join(settings.dataDir, 'kv'))
  const app = createKvApp({ store, log, registry: createMetricsRegistry('kv'), token: settings.token, idleTimeoutSeconds: settings.idleTimeoutSeconds })
  return serveRole({ role: 'kv', app, listen, log, close: () => store.close() })
}

if (import.meta.main) await runMain(() => startKv(process.argv.slice(2)))
