// Entry of the storage role: `bun run src/storage.ts <self> <kv>`.
import { join } from 'node:path'
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createStorageApp } from './roles/storage/app.ts'
import { openFsImageStore } from './roles/storage/fs-image-store.ts'
import { dialable, parseServiceArgs } from './shared/args.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger } from './shared/logger.ts'
import { type RunningRole, runMain, serveRole } from './shared/run-role.ts'

/** Starts the storage role from its command-line arguments; images live under `<dataDir>/storage`. */
export async function startStorage(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { self, kv } = parseServiceArgs('storage', argv)
  const log = createLogger('storage')
  const store = openFsImageStore(join(settings.dataDir, 'storage'))
  const app = createStorageApp({
    store,
    log,
    registry: createMetricsRegistry('storage'),
    maxUploadBytes: settings.maxUploadBytes,
    uploadTimeoutSeconds: settings.uploadTimeoutSeconds,
    token: settings.token,
    idleTimeoutSeconds: settings.idleTimeoutSeconds,
  })
  return serveRole({
    role: 'storage',
    app,
    listen: self,
    log,
    register: { kv: createKvClient(dialable(kv), createPeerFetch({ token: settings.token })), key: 'storageAddress', value: dialable(self), waitSeconds: settings.kvWaitSeconds, ttlSeconds: settings.registrationTtlSeconds },
    close: () => store.close(),
  })
}

if (import.meta.main) await runMain(() => startStorage(process.argv.slice(2)))
