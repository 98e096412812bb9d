// Workers that die, stall, work long, stop or choke, as real processes: no task is lost, done twice or corrupted.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { type Cluster, flatResultColour, isFlatResult, isSwapOf, logged, slowerPng, slowPng, smallPng, startCluster } from '../helpers/cluster.ts'
import type { Bytes } from '../helpers/png.ts'
import { waitFor } from '../helpers/wait-for.ts'

/** 6000 x 6000 and flat: 8-bit RGB is about 1.3 s of work for a worker here (up to 2 s under load), 16-bit RGBA 2.9 s. */
const SIDE = 6000
let SLOW: Bytes
let SLOWER: Bytes
/** The one colour of each one's result. */
let SLOW_OUT: number[]
let SLOWER_OUT: number[]
/** One system for the cases that share its settings: a 1 s lease, and failed for good at the second failed attempt. */
let shared: Cluster
let own: Cluster | undefined
beforeAll(async () => {
  ;[SLOW, SLOWER, shared] = await Promise.all([
    slowPng(SIDE),
    slowerPng(SIDE),
    startCluster({ env: { PIXMILL_LEASE_SECONDS: '1', PIXMILL_MAX_ATTEMPTS: '2' } }),
  ])
  ;[SLOW_OUT, SLOWER_OUT] = await Promise.all([flatResultColour(SLOW), flatResultColour(SLOWER)])
})
afterEach(async () => {
  await shared.killWorkers()
  await own?.close()
  own = undefined
})
afterAll(() => shared.close())

async function finishedImage(c: Cluster, id: number): Promise<Uint8Array> {
  const image = await c.image(id, 'finished')
  if (!image) throw new Error(`no finished image for task ${id}`)
  return image
}

describe('faults: workers', () => {
  test('kill -9 of a worker holding a task: the task comes back after its lease and another worker finishes it exactly once', async () => {
    const c = shared
    const first = await c.startWorker('worker-a')
    const id = await c.uploadOk(SLOW)
    await c.waitState(id, [1])
    await first.kill9()
    // The kill must have come in the middle of the work, or this test proves nothing.
    expect(logged(first.logFile, 'task finished', id)).toHaveLength(0)
    const second = await c.startWorker('worker-b')
    const status = await c.waitState(id, [2], 30_000)
    // The expired lease counted as one failed attempt; PIXMILL_MAX_ATTEMPTS=2 leaves room for one more.
    expect(status).toMatchObject({ state: 2, attempts: 1 })
    // Logs are written asynchronously: wait for the lines of the finish.
    await waitFor(
      'the finish in the logs',
      () => logged(second.logFile, 'task finished', id).length > 0 && logged(c.roles.database!.logFile, 'task finished', id).length > 0,
    )
    expect(logged(second.logFile, 'task finished', id)).toHaveLength(1)
    expect(logged(c.roles.database!.logFile, 'task claimed', id)).toHaveLength(2)
    expect(logged(c.roles.database!.logFile, 'task finished', id)).toHaveLength(1)
    expect(await isFlatResult(await finishedImage(c, id), SIDE, SLOW_OUT)).toBe(true)
  })

  test('a worker paused past its lease and resumed after another finished the task corrupts nothing and lives on', async () => {
    const c = shared
    const late = await c.startWorker('worker-late')
    const id = await c.uploadOk(SLOW)
    await c.waitState(id, [1])
    late.proc.kill('SIGSTOP')
    expect(logged(late.logFile, 'task finished', id)).toHaveLength(0)
    const other = await c.startWorker('worker-other')
    expect(await c.waitState(id, [2], 30_000)).toMatchObject({ state: 2, attempts: 1 })
    const finished = await finishedImage(c, id)
    late.proc.kill('SIGCONT')
    // Its renewal, its image or its report is refused: the worker gives the task up, whichever it tried first.
    await waitForLog(late.logFile, 'abandoning the task; its lease will expire', id)
    expect(logged(late.logFile, 'task finished', id)).toHaveLength(0)
    expect(logged(c.roles.database!.logFile, 'task finished', id)).toHaveLength(1)
    expect(await c.status(id)).toMatchObject({ state: 2, attempts: 1 })
    expect(await finishedImage(c, id)).toEqual(finished)
    expect(await isFlatResult(finished, SIDE, SLOW_OUT)).toBe(true)
    // The late worker is still there and still works: with the other one gone, it processes the next task.
    expect(await other.terminate()).toBe(0)
    expect(late.proc.exitCode).toBeNull()
    const png = smallPng(1)
    const next = await c.uploadOk(png)
    await c.waitState(next, [2])
    expect(await isSwapOf(png, await finishedImage(c, next))).toBe(true)
    expect(logged(late.logFile, 'task finished', next)).toHaveLength(1)
  })

  test('a worker renews its lease while it works, so a task longer than the lease is handed out once', async () => {
    // A 2 s lease, renewed every 667 ms: a renewal late by a second on a loaded machine (the whole suite on 2 cores)
    // must not make this test lose the lease it is about.
    own = await startCluster({ env: { PIXMILL_LEASE_SECONDS: '2' } })
    const c = own
    const workers = [await c.startWorker('worker-1'), await c.startWorker('worker-2')]
    const id = await c.uploadOk(SLOWER)
    expect(await c.waitState(id, [2], 30_000)).toMatchObject({ state: 2, attempts: 0 })
    await waitFor('the finish in the logs', () => workers.some((w) => logged(w.logFile, 'task finished', id).length > 0))
    expect(logged(c.roles.database!.logFile, 'task claimed', id)).toHaveLength(1)
    const finishers = workers.filter((w) => logged(w.logFile, 'task finished', id).length > 0)
    expect(finishers).toHaveLength(1)
    // The premise: the work really took longer than the 2 s lease.
    expect(Number(logged(finishers[0]!.logFile, 'task finished', id)[0]!.ms)).toBeGreaterThan(2000)
    for (const worker of workers) expect(await worker.terminate()).toBe(0)
    expect(Number(logged(finishers[0]!.logFile, 'worker stopped')[0]!.renewals)).toBeGreaterThanOrEqual(1)
    expect(await isFlatResult(await finishedImage(c, id), SIDE, SLOWER_OUT)).toBe(true)
  })

  test('SIGTERM of a worker mid-task: it exits 0 and the task is finished or handed back at once, not after its 60 s lease', async () => {
    own = await startCluster({ env: { PIXMILL_LEASE_SECONDS: '60' } })
    const c = own
    const worker = await c.startWorker('worker-term')
    const id = await c.uploadOk(SLOW)
    await c.waitState(id, [1])
    const signalled = performance.now()
    expect(await worker.terminate()).toBe(0)
    expect(performance.now() - signalled).toBeLessThan(15_000)
    const status = await c.status(id)
    expect([0, 2]).toContain(status.state)
    expect(status.attempts).toBe(0)
    if (status.state === 0) await c.startWorker('worker-next')
    expect(await c.waitState(id, [2], 30_000)).toMatchObject({ state: 2, attempts: 0 })
    expect(await isFlatResult(await finishedImage(c, id), SIDE, SLOW_OUT)).toBe(true)
  })

  test('a poison image is bounded by PIXMILL_TASK_TIMEOUT_SECONDS: failed for good after PIXMILL_MAX_ATTEMPTS, and the worker lives on', async () => {
    const c = shared
    const worker = await c.startWorker('worker-limited', { PIXMILL_TASK_TIMEOUT_SECONDS: '1' })
    const id = await c.uploadOk(SLOWER)
    const status = await c.waitState(id, [3], 30_000)
    expect(status).toMatchObject({ state: 3, attempts: 2 })
    expect(status.error).toMatch(/took longer than 1000 ms|time ?out/i)
    expect(worker.proc.exitCode).toBeNull()
    const png = smallPng(2)
    const next = await c.uploadOk(png)
    await c.waitState(next, [2])
    expect(await isSwapOf(png, await finishedImage(c, next))).toBe(true)
  })
})

async function waitForLog(file: string, msg: string, task: number, timeoutMs = 15_000): Promise<void> {
  await waitFor(`"${msg}" for task ${task} in ${file}`, () => logged(file, msg, task).length > 0, timeoutMs, 50)
}
