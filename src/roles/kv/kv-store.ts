// The KvStore interface: the registry's pairs, whatever keeps them.

/** A durable string-to-string map. Implementations: bun:sqlite (embedded default). */
export interface KvStore {
  get(key: string): Promise<string | undefined>
  /** Resolves once the pair is durable. */
  set(key: string, value: string): Promise<void>
  /** Resolves true when the key existed. */
  remove(key: string): Promise<boolean>
  /** Every pair, ordered by key. */
  list(): Promise<Array<readonly [string, string]>>
  /** Whether the store can serve; a cheap check. */
  healthy(): Promise<boolean>
  close(): Promise<void>
}
