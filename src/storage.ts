// Entry of the storage role: `bun run src/storage.ts <self> <kv>`.
import { join } from 'node:path'
import { createPeerFetch } from './clients/http.ts'
import { createKvClient } from './clients/kv-client.ts'
import { createMetricsRegistry } from './plugins/metrics.ts'
import { createStorageApp } from './roles/storage/app.ts'
import { openFsImageStore } from './roles/storage/fs-image-store.ts'
import type { ImageStore } from './roles/storage/image-store.ts'
import { openS3ImageStore } from './roles/storage/s3-image-store.ts'
import { runMain } from './runtime/run-main.ts'
import { kvWait, type RunningRole, serveRole } from './runtime/serve-role.ts'
import { dialable, parseServiceArgs } from './shared/args.ts'
import { withBackoff } from './shared/backoff.ts'
import { loadSettings, type Settings } from './shared/config.ts'
import { createLogger, type Logger } from './shared/logger.ts'

/**
 * The S3 store when PIXMILL_STORAGE_URL is set (endpoint and keys from the S3_* variables Bun's client reads), waiting
 * for it at start as for the kv store; otherwise the file system under `<dataDir>/storage`.
 */
async function openImageStore(settings: Settings, log: Logger): Promise<ImageStore> {
  const url = settings.storageUrl
  if (url === undefined) {
    const folder = join(settings.dataDir, 'storage')
    const { durability } = settings
    log.info({ folder, durability }, 'images kept on the file system')
    return openFsImageStore(folder, { log, cacheBytes: settings.storageCacheBytes, durability })
  }
  const store = await withBackoff(() => openS3ImageStore(url), { ...kvWait(settings), what: `opening the image store at ${url}`, log })
  log.info({ storageUrl: url }, 'images kept in S3-compatible object storage')
  return store
}

/** Starts the storage role from its command-line arguments; images live under `<dataDir>/storage` or in S3. */
export async function startStorage(argv: readonly string[], settings: Settings = loadSettings()): Promise<RunningRole> {
  const { self, kv } = parseServiceArgs('storage', argv)
  const log = createLogger('storage')
  const store = await openImageStore(settings, log)
  const app = createStorageApp({
    store,
    log,
    registry: createMetricsRegistry('storage'),
    maxUploadBytes: settings.maxUploadBytes,
    uploadTimeoutSeconds: settings.uploadTimeoutSeconds,
    minFreeBytes: settings.minFreeBytes,
    token: settings.token,
    idleTimeoutSeconds: settings.idleTimeoutSeconds,
    privateResults: settings.privateResults,
  })
  return serveRole({
    role: 'storage',
    app,
    listen: self,
    log,
    register: {
      kv: createKvClient(dialable(kv), createPeerFetch({ token: settings.token })),
      key: 'storageAddress',
      value: dialable(self),
      waitSeconds: settings.kvWaitSeconds,
      ttlSeconds: settings.registrationTtlSeconds,
    },
    close: () => store.close(),
  })
}

if (import.meta.main) await runMain('storage', () => startStorage(process.argv.slice(2)))
