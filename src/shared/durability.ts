// How much an acknowledged write survives (PIXMILL_DURABILITY), for the stores kept on this machine's disk.

/**
 * `process`: every acknowledged write survives `kill -9` of any role (the contract's "durable"): SQLite commits to its
 * write-ahead log and an image is renamed into place, both in the kernel's page cache, which outlives the process.
 * `power`: also a power loss or a kernel crash: every SQLite commit and every image (and its folder) is flushed to
 * the disk before the answer, a few milliseconds each.
 */
export type Durability = 'process' | 'power'

export const DURABILITIES = ['process', 'power'] as const satisfies readonly Durability[]

/** The pragmas a bun:sqlite file is opened with: WAL, and each commit flushed to the disk only for `power`. */
export function sqlitePragmas(durability: Durability = 'process'): string {
  return `PRAGMA journal_mode = WAL; PRAGMA synchronous = ${durability === 'power' ? 'FULL' : 'NORMAL'};`
}
