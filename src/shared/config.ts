// Settings: every PIXMILL_* variable read once, validated, frozen and passed down.
import { resolve } from 'node:path'

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
  })
}
