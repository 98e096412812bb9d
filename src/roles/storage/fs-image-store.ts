// ImageStore on the file system: <root>/<area>/<id / 10^6>/<id / 1000 mod 1000>/<id>.png, written through a temp file.
import { randomBytes } from 'node:crypto'
import type { BigIntStats } from 'node:fs'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { rm, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import type { Durability } from '../../shared/durability.ts'
import { DependencyUnavailable, HttpError, InsufficientStorage, PayloadTooLarge } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { createHotCache, tagOf } from './fs-hot-cache.ts'
import { hasFlatEntries, moveFlatImages, recountShards, removeIfAbandoned, shardOf } from './fs-layout.ts'
import { type LastChange, openTally } from './fs-tally.ts'
import { BatchedWriter, createFolderSyncer, fsyncAsync } from './fs-writes.ts'
import { AREAS, type Area, assertImageKey, type ImageStore } from './image-store.ts'

// Exported from this module before the layout had its own: the import path stays.
export { shardOf } from './fs-layout.ts'

export interface FsImageStoreOptions {
  /**
   * What a stored image survives (PIXMILL_DURABILITY; default `power`). `process`: the rename alone, which survives
   * `kill -9` (the page cache outlives the process). `power`: each image fsynced before it is renamed into place, its
   * folder after (and after a delete), the tally committed with synchronous=FULL: power loss and kernel crashes too,
   * at a disk flush per image.
   */
  readonly durability?: Durability
  /** Told when images of the flat layout of earlier versions have been moved into the sharded one. */
  readonly log?: Logger
  /**
   * Bytes of hot images kept in memory (PIXMILL_STORAGE_CACHE_BYTES; default 0, none). An image read a second time is
   * kept, up to an eighth of this each, the least recently read going first; every read checks the file's tag, so a
   * replaced or removed image is never served from memory. Bun sends a file of 1 MiB or more with sendfile(2), at
   * about half the rate it sends the same bytes from memory (oven-sh/bun#11228), and reads a smaller one into a fresh
   * buffer for every answer: a hot image, read again and again, goes out faster from here.
   */
  readonly cacheBytes?: number
}

/**
 * Opens (creating if needed) the store under `root`. Nothing at start depends on how many images there are: the
 * images and bytes per area come from a tally kept beside them (`tally.sqlite`), temp files live in `<root>/tmp`,
 * and a folder of the flat layout of earlier versions is moved into shards in the background (reads find its images
 * meanwhile). The folders are created here only; while they are gone (the data folder was moved away) the store
 * answers DependencyUnavailable and `healthy()` false rather than quietly starting an empty store.
 */
export function openFsImageStore(root: string, options: FsImageStoreOptions = {}): ImageStore {
  const durability = options.durability ?? 'power'
  const fsync = durability === 'power'
  const areaDir = (area: Area) => join(root, area)
  const tempDir = join(root, 'tmp')
  for (const dir of [...AREAS.map(areaDir), tempDir]) mkdirSync(dir, { recursive: true })
  // First the tally (its last change is judged by the temp file that change named), then the temp files.
  const tally = openTally(root, (change) => !existsSync(change.path), durability)
  for (const name of readdirSync(tempDir)) removeIfAbandoned(join(tempDir, name), name)
  if (!tally.existed) recountShards(areaDir, tally, options.log)
  /** Areas whose folder may still hold images of the flat layout: reads look there too until the move is done. */
  const flat = new Set<Area>(AREAS.filter((area) => hasFlatEntries(areaDir(area))))
  let closed = false
  const syncFolderGrouped = createFolderSyncer()
  const cache = createHotCache(options.cacheBytes ?? 0)
  const moving =
    flat.size > 0
      ? moveFlatImages({ areaDir, imagePath, tally, flat, fsync, log: options.log, closed: () => closed }).catch((error) =>
          options.log?.error({ err: error }, 'moving images of the flat layout failed; reads still find them'),
        )
      : Promise.resolve()

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
