// Hot images kept in memory, each checked against its file's tag on every read (see FsImageStoreOptions.cacheBytes).
import { statSync } from 'node:fs'

/** Images are never changed in place, only replaced by a new file (new inode), so this is a strong tag. */
export function tagOf(info: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `"${info.ino.toString(36)}-${info.size.toString(36)}-${info.mtimeNs.toString(36)}"`
}

/** Images in memory by path, each under the tag of the file it was read from; least recently read evicted first. */
export function createHotCache(budget: number) {
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
