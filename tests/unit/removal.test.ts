// The removal of tasks with their images over the embedded store, with a storage that can fail or be an original one.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createRemoval, type ImageRemover } from '../../src/roles/database/removal.ts'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import type { TaskStore } from '../../src/roles/database/task-store.ts'
import { DependencyUnavailable, NotOffered } from '../../src/shared/errors.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { tempDir } from '../helpers/temp.ts'

let dir: ReturnType<typeof tempDir>
let store: TaskStore
let clock: number
/** Images "in storage", as `area/id`; `failing` makes every removal fail as a storage that is down. */
let images: Set<string>
let failing: boolean
const calls: string[] = []
const storage: ImageRemover = {
  async remove(id, area) {
    calls.push(`${area}/${id}`)
    if (failing) throw new DependencyUnavailable('storage is down')
    images.delete(`${area}/${id}`)
  },
}

beforeEach(() => {
  dir = tempDir()
  clock = 1_800_000_000_000
  images = new Set()
  failing = false
  calls.length = 0
  store = openSqliteTaskStore(join(dir.path, 'database'), { leaseSeconds: 60, maxAttempts: 2, now: () => clock })
})
afterEach(async () => {
  await store.close()
  dir.remove()
})

/** `n` finished tasks with both images stored. */
async function finished(n: number): Promise<number[]> {
  const ids = []
  for (let i = 0; i < n; i++) {
    const id = await store.create()
    const claim = (await store.claim()).claim!
    await store.finish(claim.task.id)
    images.add(`working/${id}`).add(`finished/${id}`)
    ids.push(id)
  }
  return ids
}

describe('removal', () => {
  test('a sweep goes batch after batch until nothing is due, images before records', async () => {
    const removed: number[] = []
    const removal = createRemoval({
      store,
      images: storage,
      log: silentLogger,
      retentionSeconds: 10,
      batchSize: 4,
      now: () => clock,
      onRemoved: (n) => removed.push(n),
    })
    await finished(10)
    clock += 10_001
    expect(await removal.sweep()).toBe(10)
    expect(images.size).toBe(0)
    expect(removed).toEqual([10])
    expect(await store.countByState()).toEqual({ 0: 0, 1: 0, 2: 0, 3: 0 })
  })

  test('two sweeps asked at once are one sweep', async () => {
    const removal = createRemoval({ store, images: storage, log: silentLogger, retentionSeconds: 10, now: () => clock })
    await finished(3)
    clock += 10_001
    const [a, b] = await Promise.all([removal.sweep(), removal.sweep()])
    expect([a, b]).toEqual([3, 3])
    expect(calls.length).toBe(6)
  })

  test('storage down: the tasks stay out of sight with their images, and the next sweep, storage back, removes them', async () => {
    const removal = createRemoval({ store, images: storage, log: silentLogger, retentionSeconds: 10, now: () => clock })
    const ids = await finished(3)
    clock += 10_001
    failing = true
    expect(await removal.sweep()).toBe(0)
    for (const id of ids) expect(await store.get(id)).toBeUndefined()
    expect(images.size).toBe(6)
    failing = false
    // At once, not after the mark's lease: a failed removal is handed back.
    expect(await removal.sweep()).toBe(3)
    expect(images.size).toBe(0)
  })

  test('an original storage (no /deleteImage): the records go, the images stay where that storage keeps everything', async () => {
    const original: ImageRemover = { remove: async () => Promise.reject(new NotOffered('storage does not offer /deleteImage', '/deleteImage')) }
    const removal = createRemoval({ store, images: original, log: silentLogger, retentionSeconds: 10, now: () => clock })
    await finished(2)
    clock += 10_001
    expect(await removal.sweep()).toBe(2)
    expect(await store.countByState()).toEqual({ 0: 0, 1: 0, 2: 0, 3: 0 })
  })

  test('an operator’s delete: at once, whatever the retention; a failure of storage is said and completed by the same call later', async () => {
    const removed: string[] = []
    const removal = createRemoval({
      store,
      images: storage,
      log: silentLogger,
      retentionSeconds: 0,
      now: () => clock,
      onRemoved: (n, by) => removed.push(`${n} ${by}`),
    })
    const [a, b] = await finished(2)
    await removal.remove(a!)
    expect(images.has(`finished/${a}`)).toBe(false)
    failing = true
    await expect(removal.remove(b!)).rejects.toBeInstanceOf(DependencyUnavailable)
    expect(await store.get(b!)).toBeUndefined()
    failing = false
    await removal.remove(b!)
    expect(images.size).toBe(0)
    expect(removed).toEqual(['1 operator', '1 operator'])
    // Retention 0: the sweep leaves finished tasks alone, however old.
    await finished(1)
    clock += 100 * 365 * 86_400_000
    expect(await removal.sweep()).toBe(0)
  })

  test('it sweeps every third of the retention, at least every second and at most every minute', () => {
    const every = (retentionSeconds: number) => createRemoval({ store, images: storage, log: silentLogger, retentionSeconds }).intervalMs()
    expect([every(3), every(1), every(30), every(604_800), every(0)]).toEqual([1000, 1000, 10_000, 60_000, 60_000])
  })
})
