// The folder layout of the file-system image store: shard folders, temp files a crash left, and the move of the flat
// layout of earlier versions into shards.
import { existsSync, linkSync, mkdirSync, opendirSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs'
import { opendir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../../shared/logger.ts'
import type { LastChange, Tally } from './fs-tally.ts'
import { syncFolder } from './fs-writes.ts'
import { AREAS, type Area } from './image-store.ts'

/** The flat layout of earlier versions: `<area>/<id>.png`. */
const FLAT_IMAGE = /^(0|[1-9][0-9]{0,14})\.png$/
/** `.<id>.png.<pid>.<random>.tmp`: hidden, never an image name, and naming the process that writes it. */
const TEMP_NAME = /^\.[0-9]+\.png\.([0-9]+)\.[0-9a-f]+\.tmp$/
/** A temp file this old is a crash's leftover even if its writer's pid is alive again (pid reuse). */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000

/** Flat-layout images moved per turn of the event loop, so that requests go on meanwhile. */
const MOVES_PER_TURN = 200

/** True when the temp file's writer is gone: another process, or an earlier life of this one (same pid in a container). */
function abandoned(pid: number, ageMs: number): boolean {
  if (pid === process.pid || ageMs > STALE_TEMP_MS) return true
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/** The shard folder of an id, relative to its area: a thousand images per folder, a thousand folders per level. */
export function shardOf(id: number): string {
  return join(String(Math.floor(id / 1_000_000)), String(Math.floor(id / 1000) % 1000))
}

export function removeIfAbandoned(path: string, name: string): void {
  const temp = TEMP_NAME.exec(name)
  if (temp && abandoned(Number(temp[1]), Date.now() - statSync(path).mtimeMs)) rmSync(path, { force: true })
}

export function hasFlatEntries(areaDir: string): boolean {
  // The area folder holds shard folders (one per million ids) and, from earlier versions, images and temp files:
  // read only until the first of those.
  const dir = opendirSync(areaDir)
  try {
    for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
      if (FLAT_IMAGE.test(entry.name) || TEMP_NAME.test(entry.name)) return true
    }
    return false
  } finally {
    dir.closeSync()
  }
}

/** A store with shard folders but no tally (it was deleted): counted once, here, so that the figures are right. */
export function recountShards(areaDir: (area: Area) => string, tally: Tally, log: Logger | undefined): void {
  for (const area of AREAS) {
    let images = 0
    let bytes = 0
    for (const top of readdirSync(areaDir(area))) {
      if (!/^\d+$/.test(top)) continue
      for (const mid of readdirSync(join(areaDir(area), top))) {
        for (const name of readdirSync(join(areaDir(area), top, mid))) {
          if (!FLAT_IMAGE.test(name)) continue
          images++
          bytes += statSync(join(areaDir(area), top, mid, name)).size
        }
      }
    }
    if (images > 0) {
      tally.add(area, images, bytes)
      log?.warn({ area, images, bytes }, 'the image tally was missing; counted the images once')
    }
  }
}

/** What the move of the flat layout works on: the store's folders, its tally, and the areas still to move. */
export interface FlatMove {
  readonly areaDir: (area: Area) => string
  readonly imagePath: (id: number, area: Area) => string
  readonly tally: Tally
  /** Areas whose folder may still hold images of the flat layout; each is taken out once its move is done. */
  readonly flat: Set<Area>
  readonly fsync: boolean
  readonly log: Logger | undefined
  readonly closed: () => boolean
}

/** Moves the flat layout's images into their shards, in the background; a newer sharded image wins. */
export async function moveFlatImages(m: FlatMove): Promise<void> {
  for (const area of [...m.flat]) {
    let moved = 0
    let count = 0
    for await (const entry of await opendir(m.areaDir(area))) {
      if (m.closed()) return
      const from = join(m.areaDir(area), entry.name)
      if (TEMP_NAME.test(entry.name)) removeIfAbandoned(from, entry.name)
      const name = FLAT_IMAGE.exec(entry.name)
      if (!name) continue
      if (moveOne(m, area, Number(name[1]), from)) moved++
      if (++count % MOVES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    m.flat.delete(area)
    if (m.fsync) await syncFolder(m.areaDir(area)).catch(() => {})
    m.log?.info({ area, moved }, 'images of the flat layout moved into shard folders')
  }
}

/** One flat image into its shard, in one synchronous step (no put or delete of this process runs in between). */
function moveOne(m: FlatMove, area: Area, id: number, from: string): boolean {
  const to = m.imagePath(id, area)
  const size = statSync(from, { throwIfNoEntry: false })?.size
  if (size === undefined) return false
  if (existsSync(to)) {
    // A put after the upgrade already replaced it.
    unlinkSync(from)
    return false
  }
  mkdirSync(join(m.areaDir(area), shardOf(id)), { recursive: true })
  const change: LastChange = { op: 'move', area, path: from, imagesDelta: 1, bytesDelta: size }
  m.tally.begin(change)
  try {
    // link then unlink: never over an image that appeared meanwhile, and the image is never missing.
    linkSync(from, to)
    unlinkSync(from)
  } catch (error) {
    m.tally.undo(change)
    throw error
  }
  return true
}
