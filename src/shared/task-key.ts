// Task keys of private results: made by the master for each upload, kept by the database only as a hash.
import { createHash, timingSafeEqual } from 'node:crypto'
import { NotFound } from './errors.ts'

/** The header that answers an upload's key, and that may carry it on a read instead of `key=`. */
export const TASK_KEY_HEADER = 'x-task-key'

/** 24 random bytes (192 bits), as 32 base64url characters: safe in a URL, a header and a comma list. */
export function newTaskKey(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url')
}

/** What the database keeps of a key: its SHA-256, in hex. A leaked record gives no key away. */
export function hashTaskKey(key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

export const KEY_HASH_PATTERN = '^[0-9a-f]{64}$'
const HASH = new RegExp(KEY_HASH_PATTERN)
const NO_HASH = Buffer.alloc(32)

/**
 * Whether `given` is the key whose hash is `keyHash`. Compared in constant time on the digests, so the time taken says
 * nothing of how much of a key was right; a task without a hash (uploaded while results were not private) matches no key.
 */
export function keyMatches(given: string, keyHash: string | null | undefined): boolean {
  const known = keyHash !== null && keyHash !== undefined && HASH.test(keyHash)
  const digest = createHash('sha256').update(given).digest()
  return timingSafeEqual(digest, known ? Buffer.from(keyHash, 'hex') : NO_HASH) && known
}

/**
 * The one answer to a read that may not see the task, word for word the database's for an id it does not know: a wrong
 * key, a missing one and an unknown id cannot be told apart.
 */
export const unknownTask = (id: number) => new NotFound(`No task with id ${id}.`)
