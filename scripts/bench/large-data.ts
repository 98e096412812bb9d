// A data folder as months of use leave it: many task records in bun:sqlite and many images on the file system.
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import { openFsImageStore } from '../../src/roles/storage/fs-image-store.ts'

/** One small PNG-signed body per image: what is measured is how many there are, not their size. */
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...new Uint8Array(1016).fill(7)])

/**
 * Fills `dataDir` the way the roles keep their data: `tasks` finished (nine in ten) and failed task records, ended
 * within the last hour (so that no sweep of the default retention touches them while they are measured), and
 * `images` finished images written through the store (its shards and tally as a real storage role leaves them).
 */
export async function fillDataFolder(dataDir: string, sizes: { readonly tasks: number; readonly images: number }): Promise<void> {
  const folder = join(dataDir, 'database')
  // The store makes the schema; the rows go in directly, in one transaction (through the API it would take an hour).
  await openSqliteTaskStore(folder, { leaseSeconds: 120, maxAttempts: 3 }).close()
  const db = new Database(join(folder, 'tasks.sqlite'), { strict: true })
  const insert = db.prepare<unknown, [number, number, number, number]>(
    'INSERT INTO tasks (id, state, attempts, created_at, updated_at, ready) VALUES (?1, ?2, ?3, ?4, ?4, 1)',
  )
  const at = Date.now() - 3600_000
  db.transaction(() => {
    for (let id = 0; id < sizes.tasks; id++) insert.run(id, id % 10 === 0 ? 3 : 2, id % 10 === 0 ? 3 : 0, at + Math.floor((id * 3600_000) / sizes.tasks))
    db.prepare(`UPDATE sequence SET next = ? WHERE name = 'tasks'`).run(sizes.tasks)
  })()
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  db.close()

  // fsync off: the images only need to be there, as a role that wrote them over months would have left them.
  const store = openFsImageStore(join(dataDir, 'storage'), { durability: 'process' })
  const body = () =>
    new ReadableStream<Uint8Array>({
      start: (c) => {
        c.enqueue(IMAGE)
        c.close()
      },
    })
  for (let id = 0; id < sizes.images; id += 64) {
    await Promise.all(Array.from({ length: Math.min(64, sizes.images - id) }, (_, i) => store.put(id + i, 'finished', body(), { maxBytes: IMAGE.byteLength })))
  }
  await store.close()
}
