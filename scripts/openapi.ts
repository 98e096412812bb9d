// The OpenAPI document of every role, as its /swagger/json answers it: `bun run docs:openapi` writes docs/openapi/<role>.json.
//
// Each role's app is built in this process from its factory, over real embedded stores in a temporary folder (bun:sqlite,
// files) and with its peers called in-process, as a role of `bun run start` calls them; nothing listens. The settings are
// the defaults of the settings loader, with PIXMILL_TOKEN set (so that every internal route says it wants the token) and
// PIXMILL_PRIVATE_RESULTS off. The text written depends on the code alone: no time, no temporary path, no port.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { AnyElysia } from 'elysia'
import { createDatabaseClient } from '../src/clients/database-client.ts'
import { createPeerFetch, type Fetch } from '../src/clients/http.ts'
import { createKvClient } from '../src/clients/kv-client.ts'
import { createMasterPublicClient } from '../src/clients/master-public-client.ts'
import { fixedPeer } from '../src/clients/peer-address.ts'
import { createStorageClient } from '../src/clients/storage-client.ts'
import { createMetricsRegistry } from '../src/plugins/metrics.ts'
import { createDatabaseApp } from '../src/roles/database/app.ts'
import { createRemoval } from '../src/roles/database/removal.ts'
import { openSqliteTaskStore } from '../src/roles/database/sqlite-task-store.ts'
import { createFrontendApp } from '../src/roles/frontend/app.ts'
import { boardFeedOf } from '../src/roles/frontend/board.ts'
import { createWorkerDirectory } from '../src/roles/frontend/worker-directory.ts'
import { createKvApp } from '../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../src/roles/kv/sqlite-kv-store.ts'
import { createMasterApp } from '../src/roles/master/app.ts'
import { createStorageApp } from '../src/roles/storage/app.ts'
import { openFsImageStore } from '../src/roles/storage/fs-image-store.ts'
import { createWorkerApp } from '../src/roles/worker/app.ts'
import { loadSettings } from '../src/shared/config.ts'
import { silentLogger } from '../src/shared/logger.ts'

export const ROLES = ['kv', 'database', 'storage', 'master', 'worker', 'frontend'] as const
export type DocumentedRole = (typeof ROLES)[number]

/** Where the documents are kept, from the repository's root. */
export const OPENAPI_DIR = resolve(import.meta.dir, '..', 'docs', 'openapi')

/** Where each role's Swagger plugin serves its document (src/plugins/swagger.ts). */
export const SPEC_PATH = '/swagger/json'

/** A token of the documents' configuration: only its presence shows (routes' `security`), never its value. */
const DOCUMENT_TOKEN = 'openapi-document-token'

/** Every role's app over embedded stores in `dir`, wired in-process; `close()` releases the stores. */
export function buildRoleApps(dir: string) {
  // The defaults, as a role started with no PIXMILL_* variable has them, and a token.
  const settings = loadSettings({ PIXMILL_DATA_DIR: dir, PIXMILL_TOKEN: DOCUMENT_TOKEN })
  const token = settings.token
  const quiet = (role: string) => ({ log: silentLogger, registry: createMetricsRegistry(role) })
  const common = { token, idleTimeoutSeconds: settings.idleTimeoutSeconds }
  const peerFetch = (app: AnyElysia): Fetch => createPeerFetch({ token, base: (request) => app.handle(request) })

  const kvStore = openSqliteKvStore(join(dir, 'kv'))
  const kv = createKvApp({ store: kvStore, ...common, ...quiet('kv') })

  const images = openFsImageStore(join(dir, 'storage'), { cacheBytes: settings.storageCacheBytes })
  const storage = createStorageApp({
    store: images,
    maxUploadBytes: settings.maxUploadBytes,
    uploadTimeoutSeconds: settings.uploadTimeoutSeconds,
    minFreeBytes: settings.minFreeBytes,
    privateResults: settings.privateResults,
    ...common,
    ...quiet('storage'),
  })
  const storageClient = createStorageClient(fixedPeer('storageAddress', 'storage.local'), peerFetch(storage))

  const tasks = openSqliteTaskStore(join(dir, 'database'), { leaseSeconds: settings.leaseSeconds, maxAttempts: settings.maxAttempts })
  const removal = createRemoval({ store: tasks, images: storageClient, log: silentLogger, retentionSeconds: settings.retentionSeconds })
  const database = createDatabaseApp({ store: tasks, removal, ...common, ...quiet('database') })

  const master = createMasterApp({
    database: createDatabaseClient(fixedPeer('databaseAddress', 'database.local'), peerFetch(database)),
    storage: storageClient,
    maxUploadBytes: settings.maxUploadBytes,
    uploadTimeoutSeconds: settings.uploadTimeoutSeconds,
    maxUploadsInFlight: settings.maxUploadsInFlight,
    privateResults: settings.privateResults,
    uploadsPerMinute: settings.uploadsPerMinute,
    trustProxy: settings.trustProxy,
    corsOrigins: settings.corsOrigins,
    dependenciesHealthy: async () => ({ database: true, storage: true }),
    ...common,
    ...quiet('master'),
  })

  const worker = createWorkerApp({
    stats: () => ({
      processed: 0,
      failed: 0,
      peerErrors: 0,
      abandoned: 0,
      renewals: 0,
      inFlight: 0,
      processingMs: 0,
      loops: 0,
      busyLoops: 0,
      startedAt: undefined,
      lastTaskAt: undefined,
      claimProblem: undefined,
      closing: false,
    }),
    address: () => 'worker.local:0',
    ...common,
    ...quiet('worker'),
  })

  const masterClient = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), peerFetch(master))
  const workers = createWorkerDirectory(createKvClient('kv.local:3000', peerFetch(kv)), peerFetch(worker))
  const boardFeed = boardFeedOf(masterClient, workers)
  const frontend = createFrontendApp({
    master: masterClient,
    maxUploadBytes: settings.maxUploadBytes,
    maxUploadsInFlight: settings.maxUploadsInFlight,
    workers,
    boardFeed,
    image: (id, area) => storageClient.get(id, area),
    privateResults: settings.privateResults,
    uploadsPerMinute: settings.uploadsPerMinute,
    trustProxy: settings.trustProxy,
    corsOrigins: settings.corsOrigins,
    ...common,
    ...quiet('frontend'),
  })

  const apps: Record<DocumentedRole, AnyElysia> = { kv, database, storage, master, worker, frontend }
  return {
    apps,
    async close() {
      boardFeed.close()
      await tasks.close()
      await images.close()
      await kvStore.close()
    },
  }
}

/** A document as it is kept: the JSON of /swagger/json, indented by two spaces, with a final newline. */
export function documentText(document: unknown): string {
  return `${JSON.stringify(document, null, 2)}\n`
}

/** The OpenAPI document of each of `apps`, as its /swagger/json answers it, as text to be kept in docs/openapi/<role>.json. */
export async function documentsOf(apps: Record<DocumentedRole, AnyElysia>): Promise<Record<DocumentedRole, string>> {
  const documents = {} as Record<DocumentedRole, string>
  for (const role of ROLES) {
    const response = await apps[role].handle(new Request(`http://localhost${SPEC_PATH}`))
    if (response.status !== 200) throw new Error(`${role}: ${SPEC_PATH} answered ${response.status}: ${await response.text()}`)
    documents[role] = documentText(await response.json())
  }
  return documents
}

/** Every role's OpenAPI document, from apps built over a temporary folder that is removed afterwards. */
export async function openApiDocuments(): Promise<Record<DocumentedRole, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'pixmill-openapi-'))
  const built = buildRoleApps(dir)
  try {
    return await documentsOf(built.apps)
  } finally {
    await built.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * `--print`: the documents as one JSON object (role: text) on stdout, written nowhere. The docs test reads them so, from
 * a process of their own: Elysia completes a route's schemas in place when it first validates an answer (shared wire
 * schemas then gain `additionalProperties: false`), so a process that has served requests documents them otherwise.
 */
async function main(): Promise<void> {
  const documents = await openApiDocuments()
  if (process.argv.includes('--print')) {
    process.stdout.write(JSON.stringify(documents))
    return
  }
  mkdirSync(OPENAPI_DIR, { recursive: true })
  for (const role of ROLES) {
    writeFileSync(join(OPENAPI_DIR, `${role}.json`), documents[role])
    console.log(`docs/openapi/${role}.json`)
  }
}

if (import.meta.main) await main()
