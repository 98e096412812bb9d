// ImageStore on the file system: <root>/<area>/<id / 10^6>/<id / 1000 mod 1000>/<id>.png, written through a temp file.
import { randomBytes } from 'node:crypto'
import type { BigIntStats } from 'node:fs'
import {
  closeSync,
  existsSync,
  fsync as fsyncCallback,
  linkSync,
  mkdirSync,
  opendirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs'
import { open, opendir, rm, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { DependencyUnavailable, HttpError, InsufficientStorage, PayloadTooLarge } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { type LastChange, openTally } from './fs-tally.ts'
import { AREAS, type Area, assertImageKey, type ImageStore } from './image-store.ts'

export interface FsImageStoreOptions {
  /**
   * fsync each image before it is renamed into place, and its folder after (and after a delete). Default true. A
   * rename alone already survives `kill -9` (the page cache outlives the process); fsync adds power loss and kernel
   * crashes, at the cost of a disk flush per image.
   */
  readonly fsync?: boolean
  /** Told when images of the flat layout of earlier versions have been moved into the sharded one. */
  readonly log?: Logger
  /**
   * Bytes of hot images kept in memory (PIXMILL_STORAGE_CACHE_BYTES; default 0, none). An image read is kept, up to
   * an eighth of this each, the least recently read going first; every read checks the file's tag, so a replaced or
   * removed image is never served from memory. Bun sends a file with sendfile(2) at about half the rate it sends the
   * same bytes from memory (oven-sh/bun#11228): a hot image, read again and again, goes out twice as fast from here.
   */
  readonly cacheBytes?: number
}

/** The flat layout of earlier versions: `<area>/<id>.png`. */
const FLAT_IMAGE = /^(0|[1-9][0-9]{0,14})\.png$/
/** `.<id>.png.<pid>.<random>.tmp`: hidden, never an image name, and naming the process that writes it. */
const TEMP_NAME = /^\.[0-9]+\.png\.([0-9]+)\.[0-9a-f]+\.tmp$/
/** A temp file this old is a crash's leftover even if its writer's pid is alive again (pid reuse). */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000
const fsyncAsync = promisify(fsyncCallback)

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

/**
 * Writes a body to an open file through a buffer of WRITE_BATCH bytes, synchronously: a write into the page cache
 * takes microseconds, and one per batch costs less than a hop to the thread pool and back for every chunk of the body.
 */
class BatchedWriter {
  private readonly buffer = new Uint8Array(WRITE_BATCH)
  private filled = 0

  constructor(private readonly fd: number) {}

  write(chunk: Uint8Array): void {
    if (this.filled + chunk.byteLength > WRITE_BATCH) this.flush()
    if (chunk.byteLength >= WRITE_BATCH) {
      writeFully(this.fd, chunk)
      return
    }
    this.buffer.set(chunk, this.filled)
    this.filled += chunk.byteLength
  }

  flush(): void {
    writeFully(this.fd, this.buffer.subarray(0, this.filled))
    this.filled = 0
  }
}

/** Bytes coalesced per write(2) of an upload. */
const WRITE_BATCH = 1024 * 1024

function writeFully(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done)
}

async function syncFolder(path: string): Promise<void> {
  const folder = await open(path, 'r')
  try {
    await folder.sync()
  } finally {
    await folder.close()
  }
}

/**
 * fsync of folders as a group commit: a sync asked for while one of the same folder runs waits for the next one, which
 * covers every rename made before it started. Puts that land together in a shard folder share one folder sync.
 */
function createFolderSyncer() {
  const folders = new Map<string, { running: Promise<void>; next?: Promise<void> }>()
  const start = (path: string): Promise<void> => {
    const running = syncFolder(path).finally(() => {
      const entry = folders.get(path)
      if (entry?.next) return
      folders.delete(path)
    })
    return running
  }
  return (path: string): Promise<void> => {
    const entry = folders.get(path)
    if (!entry) {
      const running = start(path)
      folders.set(path, { running })
      return running
    }
    entry.next ??= entry.running
      .catch(() => {})
      .then(() => {
        const running = start(path)
        folders.set(path, { running })
        return running
      })
    return entry.next
  }
}

/** Images are never changed in place, only replaced by a new file (new inode), so this is a strong tag. */
function tagOf(info: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `"${info.ino.toString(36)}-${info.size.toString(36)}-${info.mtimeNs.toString(36)}"`
}

/** The shard folder of an id, relative to its area: a thousand images per folder, a thousand folders per level. */
export function shardOf(id: number): string {
  return join(String(Math.floor(id / 1_000_000)), String(Math.floor(id / 1000) % 1000))
}

/**
 * Opens (creating if needed) the store under `root`. Nothing at start depends on how many images there are: the
 * images and bytes per area come from a tally kept beside them (`tally.sqlite`), temp files live in `<root>/tmp`,
 * and a folder of the flat layout of earlier versions is moved into shards in the background (reads find its images
 * meanwhile). The folders are created here only; while they are gone (the data folder was moved away) the store
 * answers DependencyUnavailable and `healthy()` false rather than quietly starting an empty store.
 */
export function openFsImageStore(root: string, options: FsImageStoreOptions = {}): ImageStore {
  const fsync = options.fsync ?? true
  const areaDir = (area: Area) => join(root, area)
  const tempDir = join(root, 'tmp')
  for (const dir of [...AREAS.map(areaDir), tempDir]) mkdirSync(dir, { recursive: true })
  // First the tally (its last change is judged by the temp file that change named), then the temp files.
  const tally = openTally(root, (change) => !existsSync(change.path))
  for (const name of readdirSync(tempDir)) removeIfAbandoned(join(tempDir, name), name)
  if (!tally.existed) recountShards()
  /** Areas whose folder may still hold images of the flat layout: reads look there too until the move is done. */
  const flat = new Set<Area>(AREAS.filter(hasFlatEntries))
  let closed = false
  const syncFolderGrouped = createFolderSyncer()
  const cache = createHotCache(options.cacheBytes ?? 0)
  const moving =
    flat.size > 0
      ? moveFlatImages().catch((error) => options.log?.error({ err: error }, 'moving images of the flat layout failed; reads still find them'))
      : Promise.resolve()

  function removeIfAbandoned(path: string, name: string): void {
    const temp = TEMP_NAME.exec(name)
    if (temp && abandoned(Number(temp[1]), Date.now() - statSync(path).mtimeMs)) rmSync(path, { force: true })
  }

  function hasFlatEntries(area: Area): boolean {
    // The area folder holds shard folders (one per million ids) and, from earlier versions, images and temp files:
    // read only until the first of those.
    const dir = opendirSync(areaDir(area))
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
  function recountShards(): void {
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
        options.log?.warn({ area, images, bytes }, 'the image tally was missing; counted the images once')
      }
    }
  }

  /** Moves the flat layout's images into their shards, in the background; a newer sharded image wins. */
  async function moveFlatImages(): Promise<void> {
    for (const area of [...flat]) {
      let moved = 0
      let count = 0
      for await (const entry of await opendir(areaDir(area))) {
        if (closed) return
        const from = join(areaDir(area), entry.name)
        if (TEMP_NAME.test(entry.name)) removeIfAbandoned(from, entry.name)
        const name = FLAT_IMAGE.exec(entry.name)
        if (!name) continue
        if (moveOne(area, Number(name[1]), from)) moved++
        if (++count % MOVES_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve))
      }
      flat.delete(area)
      if (fsync) await syncFolder(areaDir(area)).catch(() => {})
      options.log?.info({ area, moved }, 'images of the flat layout moved into shard folders')
    }
  }

  /** One flat image into its shard, in one synchronous step (no put or delete of this process runs in between). */
  function moveOne(area: Area, id: number, from: string): boolean {
    const to = imagePath(id, area)
    const size = statSync(from, { throwIfNoEntry: false })?.size
    if (size === undefined) return false
    if (existsSync(to)) {
      // A put after the upgrade already replaced it.
      unlinkSync(from)
      return false
    }
    mkdirSync(join(areaDir(area), shardOf(id)), { recursive: true })
    const change: LastChange = { op: 'move', area, path: from, imagesDelta: 1, bytesDelta: size }
    tally.begin(change)
    try {
      // link then unlink: never over an image that appeared meanwhile, and the image is never missing.
      linkSync(from, to)
      unlinkSync(from)
    } catch (error) {
      tally.undo(change)
      throw error
    }
    return true
  }

  function imagePath(id: number, area: Area): string {
    return join(areaDir(area), shardOf(id), `${id}.png`)
  }

  /** File-system errors that are the store's fault become a 503 (folder gone, read-only) or a 507 (no room). */
  function failure(error: unknown, what: string): unknown {
    if (error instanceof HttpError) return error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return new DependencyUnavailable(`${what} failed: the storage folder ${root} is not there.`)
    // No room: 507, as when PIXMILL_MIN_FREE_BYTES refuses an upload first; the half-written file is gone by now.
    if (code === 'ENOSPC' || code === 'EDQUOT') return new InsufficientStorage(`${what} failed: the disk is full (${code}).`)
    // A file-size limit (ulimit -f, a quota on file size) is the disk refusing the write, as a full disk is.
    if (code === 'EFBIG') return new InsufficientStorage(`${what} failed: the file system refuses a file this large (EFBIG).`)
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EIO') {
      return new DependencyUnavailable(`${what} failed: the storage folder cannot be written (${code}).`)
    }
    return error
  }

  /** The folders must be there: a store whose data folder was moved away must not quietly start again. */
  function assertFolders(area: Area): void {
    if (!statSync(areaDir(area), { throwIfNoEntry: false })?.isDirectory()) {
      throw new DependencyUnavailable(`The storage folder ${root} is not there.`)
    }
  }

  /** Renames the complete temp file over the image, tally first; synchronous so that no other change runs between. */
  function commit(temp: string, target: string, area: Area, bytes: number): void {
    const old = statSync(target, { throwIfNoEntry: false })
    const change: LastChange = { op: 'put', area, path: temp, imagesDelta: old ? 0 : 1, bytesDelta: bytes - (old?.size ?? 0) }
    tally.begin(change)
    try {
      renameSync(temp, target)
    } catch (error) {
      tally.undo(change)
      throw error
    }
  }

  /**
   * The image file of (id, area) and its status: its shard, or while the flat layout is being moved, its flat place.
   * A synchronous stat: the inode is in the kernel's cache, and a hop to the thread pool and back costs more than it.
   */
  function existing(id: number, area: Area): { path: string; info: BigIntStats } | undefined {
    const sharded = imagePath(id, area)
    const info = statSync(sharded, { bigint: true, throwIfNoEntry: false })
    if (info) return { path: sharded, info }
    if (!flat.has(area)) return undefined
    const old = join(areaDir(area), `${id}.png`)
    const oldInfo = statSync(old, { bigint: true, throwIfNoEntry: false })
    return oldInfo ? { path: old, info: oldInfo } : undefined
  }

  return {
    async put(id, area, body, { maxBytes }) {
      assertImageKey(id, area)
      if (closed) throw new DependencyUnavailable('The image store is closed.')
      const target = imagePath(id, area)
      const temp = join(tempDir, `.${id}.png.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
      const reader = body.getReader()
      let fd: number | undefined
      try {
        assertFolders(area)
        // 'wx': a fresh file of our own, never someone else's temp file.
        fd = openSync(temp, 'wx')
        const writer = new BatchedWriter(fd)
        let bytes = 0
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          bytes += value.byteLength
          if (bytes > maxBytes) throw new PayloadTooLarge(maxBytes)
          writer.write(value)
        }
        writer.flush()
        // The fsyncs take milliseconds: off the JS thread.
        if (fsync) await fsyncAsync(fd)
        closeSync(fd)
        fd = undefined
        mkdirSync(join(areaDir(area), shardOf(id)), { recursive: true })
        commit(temp, target, area, bytes)
        cache.forget(target)
        if (fsync) await syncFolderGrouped(join(areaDir(area), shardOf(id)))
        return { bytes }
      } catch (error) {
        await reader.cancel(error).catch(() => {})
        if (fd !== undefined) closeSync(fd)
        await rm(temp, { force: true }).catch(() => {})
        throw failure(error, `Storing image ${id} (${area})`)
      } finally {
        reader.releaseLock()
      }
    },

    async open(id, area) {
      assertImageKey(id, area)
      try {
        const found = existing(id, area)
        if (found === undefined || !found.info.isFile()) {
          // A missing image is an answer; a missing folder is the store's failure, not "no such image".
          assertFolders(area)
          return undefined
        }
        const { path, info } = found
        const etag = tagOf(info)
        const file = Bun.file(path, { type: 'image/png' })
        const size = Number(info.size)
        return { size, etag, lastModified: info.mtime, body: (await cache.get(path, etag, size, file)) ?? file }
      } catch (error) {
        throw failure(error, `Reading image ${id} (${area})`)
      }
    },

    async delete(id, area) {
      assertImageKey(id, area)
      if (closed) throw new DependencyUnavailable('The image store is closed.')
      try {
        assertFolders(area)
        let removed: { bytes: number } | undefined
        // Both places while the flat layout is being moved: the image must be gone from every one.
        for (const path of [imagePath(id, area), ...(flat.has(area) ? [join(areaDir(area), `${id}.png`)] : [])]) {
          const old = statSync(path, { throwIfNoEntry: false })
          if (!old) continue
          // A flat image not moved yet is not in the tally.
          const counted = path === imagePath(id, area)
          const change: LastChange = { op: 'delete', area, path, imagesDelta: counted ? -1 : 0, bytesDelta: counted ? -old.size : 0 }
          tally.begin(change)
          try {
            unlinkSync(path)
          } catch (error) {
            tally.undo(change)
            if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
            continue
          }
          removed = { bytes: (removed?.bytes ?? 0) + old.size }
          cache.forget(path)
        }
        if (removed && fsync) await syncFolderGrouped(join(areaDir(area), shardOf(id)))
        return removed
      } catch (error) {
        throw failure(error, `Removing image ${id} (${area})`)
      }
    },

    async stats() {
      return tally.stats()
    },

    async freeSpace() {
      const disk = await statfs(root)
      return { free: disk.bavail * disk.bsize, total: disk.blocks * disk.bsize }
    },

    async healthy() {
      if (closed) return false
      try {
        const folders = await Promise.all(AREAS.map((area) => stat(areaDir(area))))
        return folders.every((folder) => folder.isDirectory())
      } catch {
        return false
      }
    },

    async close() {
      if (closed) return
      closed = true
      cache.clear()
      await moving.catch(() => {})
      tally.close()
    },
  }
}

/** Images in memory by path, each under the tag of the file it was read from; least recently read evicted first. */
function createHotCache(budget: number) {
  const entries = new Map<string, { etag: string; blob: Blob }>()
  let held = 0
  const drop = (path: string) => {
    const entry = entries.get(path)
    if (!entry) return
    entries.delete(path)
    held -= entry.blob.size
  }
  return {
    /** The image in memory when its tag is `etag` (read into memory now, when it fits); undefined to send the file. */
    async get(path: string, etag: string, size: number, file: Blob): Promise<Blob | undefined> {
      if (budget === 0 || size > budget / 8) return undefined
      const entry = entries.get(path)
      if (entry?.etag === etag) {
        // Most recently read: to the end of the order.
        entries.delete(path)
        entries.set(path, entry)
        return entry.blob
      }
      drop(path)
      const bytes = await file.bytes()
      // Replaced while it was read: not these bytes under that tag; send the file as it is now.
      const now = statSync(path, { bigint: true, throwIfNoEntry: false })
      if (bytes.byteLength !== size || !now || tagOf(now) !== etag) return undefined
      const blob = new Blob([bytes], { type: 'image/png' })
      entries.set(path, { etag, blob })
      held += size
      for (const [oldest] of entries) {
        if (held <= budget) break
        drop(oldest)
      }
      return blob
    },
    forget: drop,
    clear() {
      entries.clear()
      held = 0
    },
  }
}
