// Entry of the kv role: `bun run src/kv.ts [listen]`.

import { join } from 'node:path'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createKvApp } from './roles/kv/app.ts'
import type { KvStore } from './roles/kv/kv-store.ts'
import { openRedisKvStore, redactRedisUrl } from './roles/kv/redis-kv-store.ts'
import { openSqliteKvStore } from './roles/kv/sqlite-kv-store.ts'
import { runMain } from './runtime/run-main.ts'
import { type RunningRole, serveRole } from './runtime/serve-role.ts'
import { parseKvArgs } from './shared/args.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger, type Logger } from './shared/logger.ts'

/** Starts the kv role from its command-line arguments. */
export async function startKv(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { listen } = parseKvArgs(argv)
  const log = createLogger('kv')
  const store = openKvStore(settings, log)
  const app = createKvApp({ store, log, registry: createMetricsRegistry('kv'), token: settings.token, idleTimeoutSeconds: settings.idleTimeoutSeconds })
  return serveRole({ role: 'kv', app, listen, log, close: () => store.close() })
}

/** PIXMILL_KV_URL set: the pairs live in Redis (shared by every kv instance); otherwise in bun:sqlite under the data folder. */
function openKvStore(settings: Settings, log: Logger): KvStore {
  if (settings.kvUrl !== undefined) {
    log.info({ store: 'redis', url: redactRedisUrl(settings.kvUrl) }, 'kv store: Redis')
    return openRedisKvStore(settings.kvUrl, { log })
  }
  const dir = join(settings.dataDir, 'kv')
  const { durability } = settings
  log.info({ store: 'sqlite', dir, durability }, 'kv store: bun:sqlite')
  return openSqliteKvStore(dir, { durability })
}

if (import.meta.main) await runMain('kv', () => startKv(process.argv.slice(2)))
