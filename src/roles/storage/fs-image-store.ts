// ImageStore on the file system: <root>/{working,finished}/<id>.png, each written to a temp file and renamed into place.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { type FileHandle, open, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { BadRequest, DependencyUnavailable, HttpError, PayloadTooLarge } from '../../shared/errors.ts'
import { type Area, AREAS, assertImageKey, type ImageStore, type StoreStats } from './image-store.ts'

export interface FsImageStoreOptions {
  /**
   * fsync each image before it is renamed into place, and its folder after. Default true. A rename alone already
   * survives `kill -9` (the page cache outlives the process); fsync adds power loss and kernel crashes, at about
   * 1-3 ms per image of a few MiB on the machines measured.
   */
  readonly fsync?: boolean
}

const IMAGE_NAME = /^(?:0|[1-9][0-9]{0,14})\.png$/
/** `.<id>.png.<pid>.<random>.tmp`: hidden, never matching IMAGE_NAME, and naming the process that writes it. */
const TEMP_NAME = /^\.[0-9]+\.png\.([0-9]+)\.[0-9a-f]+\.tmp$/
/** A temp file this old is a crash's leftover even if its writer's pid is alive again (pid reuse). */
const STALE_TEMP_MS = 24 * 60 * 60 * 1000

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

async function writeAll(file: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let done = 0; done < chunk.byteLength; ) done += (await file.write(chunk, done, chunk.byteLength - done)).bytesWritten
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
 * Opens (creating if needed) the store under `root`: removes temp files that crashed writers left behind and counts
 * the images held. The folders are created here only; while they are gone (the data folder was moved away) the
 * store answers DependencyUnavailable and `healthy()` false rather than quietly starting an empty store.
 */
export function openFsImageStore(root: string, options: FsImageStoreOptions = {}): ImageStore {
  const fsync = options.fsync ?? true
  const areaDir = (area: Area) => join(root, area)
  const stats = {} as Record<Area, { images: number; bytes: number }>
  for (const area of AREAS) {
    const dir = areaDir(area)
    mkdirSync(dir, { recursive: true })
    stats[area] = { images: 0, bytes: 0 }
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      const temp = TEMP_NAME.exec(name)
      if (temp) {
        if (abandoned(Number(temp[1]), Date.now() - statSync(path).mtimeMs)) rmSync(path, { force: true })
      } else if (IMAGE_NAME.test(name)) {
        stats[area].images++
        stats[area].bytes += statSync(path).size
      }
    }
  }
  let closed = false

  function imagePath(id: number, area: Area): string {
    const path = join(areaDir(area), `${id}.png`)
    // The key was checked already; this keeps any future change from building a path outside the area folder.
    if (dirname(path) !== areaDir(area)) throw new BadRequest(`Image id ${id} does not name a file in the ${area} area.`)
    return path
  }

  /** File-system errors that are the store's fault (folder gone, disk full, read-only) become a 503. */
  function failure(error: unknown, what: string): unknown {
    if (error instanceof HttpError) return error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return new DependencyUnavailable(`${what} failed: the storage folder ${root} is not there.`)
    if (code === 'ENOSPC' || code === 'EDQUOT') return new DependencyUnavailable(`${what} failed: the disk is full.`)
    // A file-size limit (ulimit -f, a quota on file size) is the disk refusing the write, as a full disk is.
    if (code === 'EFBIG') return new DependencyUnavailable(`${what} failed: the file system refuses a file this large (EFBIG).`)
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EIO') {
      return new DependencyUnavailable(`${what} failed: the storage folder cannot be written (${code}).`)
    }
    return error
  }

  /** Renames the complete temp file over the image; synchronous so that the counts stay right under concurrent puts. */
  function commit(temp: string, target: string, area: Area, bytes: number): void {
    const old = statSync(target, { throwIfNoEntry: false })
    renameSync(temp, target)
    stats[area].images += old ? 0 : 1
    stats[area].bytes += bytes - (old?.size ?? 0)
  }

  return {
    async put(id, area, body, { maxBytes }) {
      assertImageKey(id, area)
      if (closed) throw new DependencyUnavailable('The image store is closed.')
      const target = imagePath(id, area)
      const temp = join(areaDir(area), `.${id}.png.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
      const reader = body.getReader()
      let file: FileHandle | undefined
      try {
        // 'wx': a fresh file of our own, never someone else's temp file.
        file = await open(temp, 'wx')
        let bytes = 0
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          bytes += value.byteLength
          if (bytes > maxBytes) throw new PayloadTooLarge(maxBytes)
          await writeAll(file, value)
        }
        if (fsync) await file.sync()
        await file.close()
        file = undefined
        commit(temp, target, area, bytes)
        if (fsync) await syncFolder(areaDir(area))
        return { bytes }
      } catch (error) {
        await reader.cancel(error).catch(() => {})
        await file?.close().catch(() => {})
        await rm(temp, { force: true }).catch(() => {})
        throw failure(error, `Storing image ${id} (${area})`)
      } finally {
        reader.releaseLock()
      }
    },

    async open(id, area) {
      assertImageKey(id, area)
      const path = imagePath(id, area)
      try {
        const info = await stat(path, { bigint: true })
        if (!info.isFile()) return undefined
        return {
          size: Number(info.size),
          // Images are never changed in place, only replaced by a new file (new inode), so this is a strong tag.
          etag: `"${info.ino.toString(36)}-${info.size.toString(36)}-${info.mtimeNs.toString(36)}"`,
          lastModified: info.mtime,
          body: Bun.file(path, { type: 'image/png' }),
        }
      } catch (error) {
        // A missing image is an answer; a missing folder is the store's failure, not "no such image".
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && statSync(areaDir(area), { throwIfNoEntry: false })?.isDirectory()) {
          return undefined
        }
        throw failure(error, `Reading image ${id} (${area})`)
      }
    },

    async stats(): Promise<StoreStats> {
      return { working: { ...stats.working }, finished: { ...stats.finished } }
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
      closed = true
    },
  }
}
