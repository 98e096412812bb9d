// Writing an image's bytes and making its folder durable: the batched synchronous writer and folder fsync group commit.
import { fsync as fsyncCallback, writeSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { promisify } from 'node:util'

export const fsyncAsync = promisify(fsyncCallback)

/**
 * Writes a body to an open file, synchronously: a write into the page cache takes microseconds, less than a hop to the
 * thread pool and back. Chunks of SMALL_CHUNK or more (the 64 KiB and larger pieces a body mostly arrives in) go
 * straight to write(2); smaller ones are gathered first in a buffer made only when one comes. A buffer of the body's
 * size made for every upload cost more than the writes it saved: zeroing it, the page faults of fresh memory and the
 * copy into it were the storage role's largest CPU cost per image.
 */
export class BatchedWriter {
  private buffer: Uint8Array | undefined
  private filled = 0

  constructor(private readonly fd: number) {}

  write(chunk: Uint8Array): void {
    if (chunk.byteLength >= SMALL_CHUNK) {
      this.flush()
      writeFully(this.fd, chunk)
      return
    }
    if (this.filled + chunk.byteLength > SMALL_BATCH) this.flush()
    this.buffer ??= new Uint8Array(SMALL_BATCH)
    this.buffer.set(chunk, this.filled)
    this.filled += chunk.byteLength
  }

  flush(): void {
    if (this.filled === 0 || this.buffer === undefined) return
    writeFully(this.fd, this.buffer.subarray(0, this.filled))
    this.filled = 0
  }
}

/** Chunks this large are written as they are. */
const SMALL_CHUNK = 16 * 1024
/** Small chunks gathered per write(2). */
const SMALL_BATCH = 64 * 1024

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
