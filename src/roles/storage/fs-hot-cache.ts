// Hot images kept in memory, each checked against its file's tag on every read (see FsImageStoreOptions.cacheBytes).
import { statSync } from 'node:fs'

/** Images are never changed in place, only replaced by a new file (new inode), so this is a strong tag. */
export function tagOf(info: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `"${info.ino.toString(36)}-${info.size.toString(36)}-${info.mtimeNs.toString(36)}"`
}

/** Images whose first read is remembered (path and tag only), for the second to find. */
const SEEN_LIMIT = 4096

/**
 * Images in memory by path, each under the tag of the file it was read from; least recently read evicted first. An
 * image comes in on its second read: most are read once (a worker fetching its new upload, a client its result), and
 * copying those into memory cost more CPU than sending them from the file (measured end to end, 512x512 images, a
 * 2-loop worker: storage 10.3-10.9 ms per image when every read image was kept, 5.9-8.1 with no cache).
 */
export function createHotCache(budget: number) {
  const entries = new Map<string, { etag: string; blob: Blob }>()
  /** Read once, under this tag: the next read of the same file keeps it. Oldest forgotten first. */
  const seen = new Map<string, string>()
  let held = 0
  const drop = (path: string) => {
    seen.delete(path)
    const entry = entries.get(path)
    if (!entry) return
    entries.delete(path)
    held -= entry.blob.size
  }
  return {
    /** The image in memory when its tag is `etag` (read into memory now, on its second read); undefined to send the file. */
    async get(path: string, etag: string, size: number, file: Blob): Promise<Blob | undefined> {
      if (budget === 0 || size > budget / 8) return undefined
      const entry = entries.get(path)
      if (entry?.etag === etag) {
        // Most recently read: to the end of the order.
        entries.delete(path)
        entries.set(path, entry)
        return entry.blob
      }
      if (seen.get(path) !== etag) {
        drop(path)
        seen.set(path, etag)
        if (seen.size > SEEN_LIMIT) seen.delete(seen.keys().next().value!)
        return undefined
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
      seen.clear()
      held = 0
    },
  }
}
