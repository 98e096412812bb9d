// Writing an image's bytes and making its folder durable: the batched synchronous writer and folder fsync group commit.
import { fsync as fsyncCallback, writeSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { promisify } from 'node:util'

export const fsyncAsync = promisify(fsyncCallback)

/**
 * Writes a body to an open file through a buffer of WRITE_BATCH bytes, synchronously: a write into the page cache
 * takes microseconds, and one per batch costs less than a hop to the thread pool and back for every chunk of the body.
 */
export class BatchedWriter {
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

export async function syncFolder(path: string): Promise<void> {
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
export function createFolderSyncer() {
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
