// The KvStore interface: the registry's pairs, whatever keeps them.

export interface SetOptions {
  /** The pair disappears this many seconds after it was last set (a registration kept alive by a heartbeat). */
  readonly ttlSeconds?: number
}

/** A durable string-to-string map: bun:sqlite (sqlite-kv-store.ts, the default) or Redis (redis-kv-store.ts). */
export interface KvStore {
  /** The value, or undefined for an unknown or expired key. */
  get(key: string): Promise<string | undefined>
  /** Resolves once the pair is durable. Setting a key again replaces its value and its time to live. */
  set(key: string, value: string, options?: SetOptions): Promise<void>
  /** Resolves true when the key existed. */
  remove(key: string): Promise<boolean>
  /** Every live pair (optionally only keys starting with `prefix`), ordered by key. */
  list(prefix?: string): Promise<Array<readonly [string, string]>>
  /** Whether the store can serve; a cheap check. */
  healthy(): Promise<boolean>
  close(): Promise<void>
}
