// Settings: every PIXMILL_* variable read once, validated, frozen and passed down.
import { resolve } from 'node:path'
import { type Address, parseAddress } from './args.ts'
import { DURABILITIES, type Durability } from './durability.ts'
import { LOG_LEVELS } from './logger.ts'

export interface Settings {
  /** Root of every role's data; each role keeps its own folder below it. Default `./data`. */
  readonly dataDir: string
  /** How long a claimed task stays in progress before it goes back to not started. Default 120. */
  readonly leaseSeconds: number
  /** Failed attempts after which a task is failed for good. Default 3. */
  readonly maxAttempts: number
  /** The largest PNG accepted, in bytes. Default 52428800 (50 MiB). */
  readonly maxUploadBytes: number
  /** The most pixels a worker will decode. Default 50000000. */
  readonly maxPixels: number
  /** How long a role waits at start for the kv store and its peers' registrations. Default 60. */
  readonly kvWaitSeconds: number
  /**
   * Shared secret of the roles (`PIXMILL_TOKEN`). When set, internal endpoints want `Authorization: Bearer <token>`
   * and every role sends it; unset keeps the original, open behaviour. At least 16 characters.
   */
  readonly token: string | undefined
  /** A connection idle this long is closed (slow or stalled clients). Default 30, at most 255 (Bun's limit). */
  readonly idleTimeoutSeconds: number
  /** An upload body must have arrived whole within this many seconds. Default 300. */
  readonly uploadTimeoutSeconds: number
  /** Uploads the master and the frontend take at once; more are told to come back later (503). Default 32. */
  readonly maxUploadsInFlight: number
  /** A worker gives up on one task after this many seconds (a poison image that hangs). Default 300. */
  readonly taskTimeoutSeconds: number
  /** A role instance's registration in kv lives this long unless its heartbeat renews it. Default 15. */
  readonly registrationTtlSeconds: number
  /**
   * A finished or failed task, with its images, is removed this long after it ended; 0 keeps everything. Default
   * 604800 (7 days).
   */
  readonly retentionSeconds: number
  /** Bytes of hot images the storage role keeps in memory (file system only). Default 33554432 (32 MiB); 0: none. */
  readonly storageCacheBytes: number
  /**
   * Storage refuses uploads (507) while its disk has less free space than this: bytes, or a share of the disk
   * (`{ percent }`). Default 1 GiB.
   */
  readonly minFreeBytes: number | { readonly percent: number }
  /** pino's level (PIXMILL_LOG_LEVEL): trace, debug, info (default), warn, error, fatal or silent. */
  readonly logLevel: (typeof LOG_LEVELS)[number]
  /** Where the worker serves its probes, metrics and status (PIXMILL_WORKER_LISTEN). Default `127.0.0.1:0` (a free port). */
  readonly workerListen: Address
  /** What an acknowledged write survives on this machine's disk (PIXMILL_DURABILITY): `process` (default, kill -9) or `power`. */
  readonly durability: Durability
  /** The worker's PNG encoder: `fast` (default) or `small` (the smallest output, at more CPU). */
  readonly pngEffort: 'fast' | 'small'
  /** `PIXMILL_KV_URL=redis://...`: the kv role keeps its pairs in Redis instead of bun:sqlite. */
  readonly kvUrl: string | undefined
  /** `PIXMILL_DATABASE_URL=postgres://...`: the database role keeps tasks in PostgreSQL instead of bun:sqlite. */
  readonly databaseUrl: string | undefined
  /** `PIXMILL_STORAGE_URL=s3://bucket/prefix`: the storage role keeps images in S3-compatible storage (S3_* variables). */
  readonly storageUrl: string | undefined
  /**
   * `PIXMILL_PRIVATE_RESULTS=1`: every upload answers a task key (`X-Task-Key`) that reading the task then needs (master
   * and frontend); callers with the token need none. Default off, as the original protocol has it.
   */
  readonly privateResults: boolean
  /** Uploads one client address may make per minute on the master's `/new` and the frontend's upload; unset: no limit. */
  readonly uploadsPerMinute: number | undefined
  /**
   * Proxies in front of the role whose `X-Forwarded-For` entries are believed (`PIXMILL_TRUST_PROXY`): 0 (default) takes
   * the socket's address; N takes the N-th address from the right of `X-Forwarded-For`. At most 10.
   */
  readonly trustProxy: number
  /**
   * Origins whose pages may call the master and the frontend from a browser (`PIXMILL_CORS_ORIGINS`): a list, or `*` for
   * any; undefined (default): no cross-origin access at all.
   */
  readonly corsOrigins: readonly string[] | '*' | undefined
}

/** A setting that is present but wrong; the message names the variable. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

function positiveInteger(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  if (!/^[1-9][0-9]*$/.test(raw.trim()) || !Number.isSafeInteger(Number(raw.trim()))) {
    throw new ConfigError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  }
  return Number(raw.trim())
}

function nonNegativeInteger(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  if (!/^(0|[1-9][0-9]*)$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    throw new ConfigError(`${name} must be 0 or a positive integer, got ${JSON.stringify(env[name])}`)
  return Number(raw)
}

function oneOf<T extends string>(env: Record<string, string | undefined>, name: string, values: readonly T[], fallback: T): T {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  if (!(values as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${values.join(', ')}, got ${JSON.stringify(env[name])}`)
  return raw as T
}

function bytesOrPercent(env: Record<string, string | undefined>, name: string, fallback: number): number | { percent: number } {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  const percent = /^(\d{1,2}(\.\d+)?)%$/.exec(raw)
  if (percent) return { percent: Number(percent[1]) }
  if (/^(0|[1-9][0-9]*)$/.test(raw) && Number.isSafeInteger(Number(raw))) return Number(raw)
  throw new ConfigError(`${name} must be a number of bytes or a percentage below 100 (5%), got ${JSON.stringify(env[name])}`)
}

function address(env: Record<string, string | undefined>, name: string, fallback: string): Address {
  const raw = env[name]?.trim()
  try {
    return parseAddress(raw === undefined || raw === '' ? fallback : raw)
  } catch {
    throw new ConfigError(`${name} must be host:port (or :port; port 0 picks a free one), got ${JSON.stringify(env[name])}`)
  }
}

function bounded(value: number, name: string, max: number): number {
  if (value > max) throw new ConfigError(`${name} must be at most ${max}, got ${value}`)
  return value
}

function secret(env: Record<string, string | undefined>, name: string): string | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  if (raw.length < 16 || /\s/.test(raw)) throw new ConfigError(`${name} must be at least 16 characters with no spaces`)
  return raw
}

function url(env: Record<string, string | undefined>, name: string, schemes: readonly string[]): string | undefined {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return undefined
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new ConfigError(`${name} must be a URL (${schemes.map((s) => `${s}//...`).join(' or ')}), got ${JSON.stringify(raw)}`)
  }
  if (!schemes.includes(parsed.protocol))
    throw new ConfigError(`${name} must start with ${schemes.map((s) => `${s}//`).join(' or ')}, got ${parsed.protocol}//`)
  return raw
}

function flag(env: Record<string, string | undefined>, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase()
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false') return false
  if (raw === '1' || raw === 'true') return true
  throw new ConfigError(`${name} must be 1 (on) or 0 (off), got ${JSON.stringify(env[name])}`)
}

/** `*`, or origins (`https://app.example`, `http://localhost:5173`) separated by commas, each exactly as a browser sends it. */
function origins(env: Record<string, string | undefined>, name: string): readonly string[] | '*' | undefined {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return undefined
  if (raw === '*') return '*'
  const list = raw.split(',').map((part) => part.trim())
  for (const origin of list) {
    let parsed: URL | undefined
    try {
      parsed = new URL(origin)
    } catch {
      // reported below
    }
    // A browser's Origin header is the scheme, host and port only, with no slash after it: anything else never matches.
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(
        `${name} must be * or origins such as https://app.example separated by commas (scheme, host and port only), got ${JSON.stringify(origin)}`,
      )
    }
  }
  return Object.freeze([...new Set(list)])
}

/** Reads and validates the settings; throws ConfigError naming the bad variable. */
export function loadSettings(env: Record<string, string | undefined> = process.env): Settings {
  const dataDir = env.PIXMILL_DATA_DIR?.trim() || './data'
  return Object.freeze({
    dataDir: resolve(dataDir),
    leaseSeconds: positiveInteger(env, 'PIXMILL_LEASE_SECONDS', 120),
    maxAttempts: positiveInteger(env, 'PIXMILL_MAX_ATTEMPTS', 3),
    maxUploadBytes: positiveInteger(env, 'PIXMILL_MAX_UPLOAD_BYTES', 52_428_800),
    maxPixels: positiveInteger(env, 'PIXMILL_MAX_PIXELS', 50_000_000),
    kvWaitSeconds: positiveInteger(env, 'PIXMILL_KV_WAIT_SECONDS', 60),
    token: secret(env, 'PIXMILL_TOKEN'),
    idleTimeoutSeconds: bounded(positiveInteger(env, 'PIXMILL_IDLE_TIMEOUT_SECONDS', 30), 'PIXMILL_IDLE_TIMEOUT_SECONDS', 255),
    uploadTimeoutSeconds: positiveInteger(env, 'PIXMILL_UPLOAD_TIMEOUT_SECONDS', 300),
    maxUploadsInFlight: positiveInteger(env, 'PIXMILL_MAX_UPLOADS_IN_FLIGHT', 32),
    taskTimeoutSeconds: bounded(positiveInteger(env, 'PIXMILL_TASK_TIMEOUT_SECONDS', 300), 'PIXMILL_TASK_TIMEOUT_SECONDS', 3600),
    registrationTtlSeconds: bounded(positiveInteger(env, 'PIXMILL_REGISTRATION_TTL_SECONDS', 15), 'PIXMILL_REGISTRATION_TTL_SECONDS', 3600),
    // Ten years at most: a retention beyond that is "keep everything", which 0 says.
    retentionSeconds: bounded(nonNegativeInteger(env, 'PIXMILL_RETENTION_SECONDS', 604_800), 'PIXMILL_RETENTION_SECONDS', 315_360_000),
    storageCacheBytes: nonNegativeInteger(env, 'PIXMILL_STORAGE_CACHE_BYTES', 32 * 1024 * 1024),
    minFreeBytes: bytesOrPercent(env, 'PIXMILL_MIN_FREE_BYTES', 1024 ** 3),
    logLevel: oneOf(env, 'PIXMILL_LOG_LEVEL', LOG_LEVELS, 'info'),
    workerListen: address(env, 'PIXMILL_WORKER_LISTEN', '127.0.0.1:0'),
    pngEffort: oneOf(env, 'PIXMILL_PNG_EFFORT', ['fast', 'small'] as const, 'fast'),
    durability: oneOf(env, 'PIXMILL_DURABILITY', DURABILITIES, 'process'),
    kvUrl: url(env, 'PIXMILL_KV_URL', ['redis:', 'rediss:']),
    databaseUrl: url(env, 'PIXMILL_DATABASE_URL', ['postgres:', 'postgresql:']),
    storageUrl: url(env, 'PIXMILL_STORAGE_URL', ['s3:']),
    privateResults: flag(env, 'PIXMILL_PRIVATE_RESULTS'),
    uploadsPerMinute: env.PIXMILL_UPLOADS_PER_MINUTE?.trim() ? positiveInteger(env, 'PIXMILL_UPLOADS_PER_MINUTE', 0) : undefined,
    trustProxy: bounded(nonNegativeInteger(env, 'PIXMILL_TRUST_PROXY', 0), 'PIXMILL_TRUST_PROXY', 10),
    corsOrigins: origins(env, 'PIXMILL_CORS_ORIGINS'),
  })
}
