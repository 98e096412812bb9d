// Images and bytes per area of the file-system store, kept in bun:sqlite so that a start never walks the images.
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { type Durability, sqlitePragmas } from '../../shared/durability.ts'
import { AREAS, type Area, type StoreStats } from './image-store.ts'

/**
 * The last change of the store, written in the same transaction as the totals it changed and before the file system
 * is touched. After a crash it says whether that change reached the disk: a put whose temp file is still there, a
 * delete whose file is still there, or a move whose source is still there did not, and its totals are taken back.
 * One row is enough: every change runs its tally, rename or unlink and nothing else in one synchronous step.
 */
export interface LastChange {
  readonly op: 'put' | 'delete' | 'move'
  readonly area: Area
  /** put: the temp file; delete: the image; move: the legacy file. */
  readonly path: string
  readonly imagesDelta: number
  readonly bytesDelta: number
}

export interface Tally {
  stats(): StoreStats
  /** Records `change` and applies its deltas, in one transaction; call right before the file-system step. */
  begin(change: LastChange): void
  /** The file-system step failed: take the deltas back. */
  undo(change: LastChange): void
  /** Adds images counted on disk (the tally was lost and the store counted its shards). */
  add(area: Area, images: number, bytes: number): void
  /** Whether the tally existed before this open (false: a fresh store, or one made by the flat layout). */
  readonly existed: boolean
  close(): void
}

/** Opens `<root>/tally.sqlite`; `reached(change)` tells whether the last change before a crash reached the disk. */
export function openTally(root: string, reached: (change: LastChange) => boolean, durability: Durability = 'process'): Tally {
  const path = join(root, 'tally.sqlite')
  const existed = Bun.file(path).size > 0
  const db = new Database(path, { create: true, strict: true })
  db.exec(sqlitePragmas(durability))
  db.exec(`
    CREATE TABLE IF NOT EXISTS totals (area TEXT PRIMARY KEY, images INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS last_change (one INTEGER PRIMARY KEY CHECK (one = 1), change TEXT NOT NULL);
  `)
  for (const area of AREAS) db.prepare('INSERT OR IGNORE INTO totals (area, images, bytes) VALUES (?, 0, 0)').run(area)
  const add = db.prepare<unknown, [number, number, string]>('UPDATE totals SET images = images + ?1, bytes = bytes + ?2 WHERE area = ?3')
  const remember = db.prepare<unknown, [string]>('INSERT OR REPLACE INTO last_change (one, change) VALUES (1, ?)')
  const forget = db.prepare('DELETE FROM last_change')

  const begin = db.transaction((change: LastChange) => {
    add.run(change.imagesDelta, change.bytesDelta, change.area)
    remember.run(JSON.stringify(change))
  })
  const undo = db.transaction((change: LastChange) => {
    add.run(-change.imagesDelta, -change.bytesDelta, change.area)
    forget.run()
  })

  const last = db.prepare<{ change: string }, []>('SELECT change FROM last_change').get()
  if (last) {
    const change = JSON.parse(last.change) as LastChange
    if (reached(change)) forget.run()
    else undo(change)
  }

  const totals = {} as Record<Area, { images: number; bytes: number }>
  for (const row of db.prepare<{ area: Area; images: number; bytes: number }, []>('SELECT * FROM totals').all())
    totals[row.area] = { images: row.images, bytes: row.bytes }

  return {
    existed,
    stats: () => ({ working: { ...totals.working }, finished: { ...totals.finished } }),
    begin(change) {
      begin(change)
      totals[change.area].images += change.imagesDelta
      totals[change.area].bytes += change.bytesDelta
    },
    undo(change) {
      undo(change)
      totals[change.area].images -= change.imagesDelta
      totals[change.area].bytes -= change.bytesDelta
    },
    add(area, images, bytes) {
      add.run(images, bytes, area)
      totals[area].images += images
      totals[area].bytes += bytes
    },
    close: () => db.close(),
  }
}
