// An in-process stack for route tests: real database and storage apps behind the master, no sockets.
import { join } from 'node:path'
import { createDatabaseClient } from '../../src/clients/database-client.ts'
import { createPeerFetch, type Fetch } from '../../src/clients/http.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createStorageClient } from '../../src/clients/storage-client.ts'
import { createDatabaseApp } from '../../src/roles/database/app.ts'
import { createRemoval } from '../../src/roles/database/removal.ts'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import { createMasterApp, databaseRecords } from '../../src/roles/master/app.ts'
import { createTaskWaits } from '../../src/roles/master/task-waits.ts'
import { createStorageApp } from '../../src/roles/storage/app.ts'
import { openFsImageStore } from '../../src/roles/storage/fs-image-store.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { inProcess } from './http.ts'
import { quietDeps } from './silent.ts'
import { tempDir } from './temp.ts'

export interface StackOptions {
  readonly maxUploadBytes?: number
  readonly maxAttempts?: number
  /** PIXMILL_RETENTION_SECONDS of the database's removal. Default 0 (keep everything). */
  readonly retentionSeconds?: number
  /** The database's clock (epoch ms), and the master's for its history windows. */
  readonly now?: () => number
  /** PIXMILL_TOKEN for every app; the peer clients send it. */
  readonly token?: string
  readonly maxUploadsInFlight?: number
  readonly uploadTimeoutSeconds?: number
  /** PIXMILL_PRIVATE_RESULTS of the master and storage. */
  readonly privateResults?: boolean
  /** The master's PIXMILL_UPLOADS_PER_MINUTE, PIXMILL_TRUST_PROXY and PIXMILL_CORS_ORIGINS. */
  readonly uploadsPerMinute?: number
  readonly trustProxy?: number
  readonly corsOrigins?: readonly string[] | '*'
  /** The master's upload-limit clock (monotonic ms). */
  readonly limitClock?: () => number
  /** Least time between two polls behind the master's `/wait` (default 250 ms). */
  readonly waitPollMs?: number
  /** Stands between the peers and storage's app: a test watches or changes the calls and answers here. */
  readonly storageTransport?: (request: Request, storage: Fetch) => Promise<Response>
}

/** Database, storage and master apps wired together in-process over a fresh data folder. */
export function inProcessStack(options: StackOptions = {}) {
  const dir = tempDir()
  const maxUploadBytes = options.maxUploadBytes ?? 1024 * 1024
  const tasks = openSqliteTaskStore(join(dir.path, 'database'), { leaseSeconds: 60, maxAttempts: options.maxAttempts ?? 2, now: options.now })
  const images = openFsImageStore(join(dir.path, 'storage'))
  const { token } = options
  const storage = createStorageApp({
    store: images,
    maxUploadBytes,
    token,
    uploadTimeoutSeconds: options.uploadTimeoutSeconds,
    privateResults: options.privateResults,
    ...quietDeps('storage'),
  })
  let storageUp = true
  const storageApp = inProcess(storage)
  const storageFetch: Fetch = options.storageTransport ? (request) => options.storageTransport!(request, storageApp) : storageApp
  const storageClient = createStorageClient(
    fixedPeer('storageAddress', 'storage.local'),
    // Lets a test take storage away, as a crashed role would be.
    createPeerFetch({ token, base: (request) => (storageUp ? storageFetch(request) : Promise.reject(new Error('connection refused'))) }),
  )
  const removal = createRemoval({ store: tasks, images: storageClient, log: silentLogger, retentionSeconds: options.retentionSeconds ?? 0, now: options.now })
  const database = createDatabaseApp({ store: tasks, removal, token, now: options.now, ...quietDeps('database') })
  const databaseClient = createDatabaseClient(fixedPeer('databaseAddress', 'database.local'), createPeerFetch({ token, base: inProcess(database) }))
  const taskWaits = createTaskWaits({ records: databaseRecords(databaseClient), pollMs: options.waitPollMs })
  const master = createMasterApp({
    database: databaseClient,
    taskWaits,
    storage: storageClient,
    maxUploadBytes,
    token,
    maxUploadsInFlight: options.maxUploadsInFlight,
    uploadTimeoutSeconds: options.uploadTimeoutSeconds,
    privateResults: options.privateResults,
    uploadsPerMinute: options.uploadsPerMinute,
    trustProxy: options.trustProxy,
    corsOrigins: options.corsOrigins,
    now: options.limitClock,
    clock: options.now,
    dependenciesHealthy: async () => ({ database: true, storage: storageUp }),
    ...quietDeps('master'),
  })
  return {
    master,
    database,
    storage,
    removal,
    tasks,
    images,
    /** The master's clients waiting on /wait. */
    taskWaits,
    dir: dir.path,
    setStorageUp(up: boolean) {
      storageUp = up
    },
    async close() {
      taskWaits.close()
      await tasks.close()
      await images.close()
      dir.remove()
    },
  }
}

/** Stacks made by a test file with different options, all closed by `closeAll` (in its afterEach). */
export function stackPool() {
  const open: Array<ReturnType<typeof inProcessStack>> = []
  return {
    with(options: StackOptions) {
      const stack = inProcessStack(options)
      open.push(stack)
      return stack
    },
    async closeAll() {
      await Promise.all(open.splice(0).map((stack) => stack.close()))
    },
  }
}
