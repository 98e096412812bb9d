// The worker's loops against an in-process fake master and storage, through the real peer clients.
import { afterEach, describe, expect, test } from 'bun:test'
import sharp from 'sharp'
import type { StorageClient } from '../../src/clients/storage-client.ts'
import { createWorker, type Worker, type WorkerOptions } from '../../src/roles/worker/worker.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { encodePng } from '../helpers/png.ts'
import { type FakeCluster, fakeCluster } from '../helpers/worker-fakes.ts'

/** A 3x2 RGB image with known pixels. */
const RGB = [[[10, 200, 30], [255, 0, 7], [1, 2, 3]], [[0, 0, 0], [90, 91, 92], [250, 5, 128]]]
const PNG = encodePng(3, 2, 2, 8, RGB)

async function until(condition: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = performance.now() + ms
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(2)
  }
}

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

let worker: Worker | undefined
afterEach(async () => {
  await worker?.close()
  worker = undefined
})

function start(cluster: FakeCluster, extra: Partial<WorkerOptions> = {}): Worker {
  worker = createWorker({
    master: cluster.master,
    storage: cluster.storage,
    threads: 2,
    maxPixels: 1_000_000,
    leaseSeconds: 120,
    log: silentLogger,
    idle: { initialMs: 2, maxMs: 10 },
    closeTimeoutMs: 1000,
    ...extra,
  })
  worker.start()
  return worker
}

describe('worker loop', () => {
  test('a task goes claim, fetch working, store finished, register finished with its lease', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    const w = start(cluster)
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    expect(cluster.callsFor(id)).toEqual(['/getImage', '/sendImage', '/registerTaskFinished'])
    // The finish carries the lease token and the processing time for the master's figures.
    expect(cluster.calls.some((c) => new RegExp(`^/registerTaskFinished\\?id=${id}&lease=L${id}&ms=\\d+$`).test(c))).toBe(true)
    const { data } = await sharp(cluster.images.get(`finished/${id}`)!).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
    expect([...data]).toEqual(RGB.flat().flatMap(([r, g, b]) => [g!, r!, b!, 255]))
    expect(w.stats()).toMatchObject({ processed: 1, failed: 0, inFlight: 0 })
  })

  test('every stage of a task runs through the stage runner in order; stats say when a task last ended and which loops are busy', async () => {
    const cluster = fakeCluster()
    const stages: string[] = []
    const release = deferred()
    const w = start(cluster, {
      threads: 3,
      clock: Date.now,
      stage: async (stage, work) => {
        stages.push(stage)
        // The first task waits in its store stage, so that its loop is busy while the others are idle.
        if (stage === 'store') await release.promise
        return work()
      },
    })
    expect(w.stats()).toMatchObject({ loops: 3, busyLoops: 0, lastTaskAt: undefined, closing: false })
    const id = cluster.addTask(PNG)
    await until(() => stages.includes('store'), 'the store stage')
    expect(w.stats()).toMatchObject({ busyLoops: 1, inFlight: 1 })
    const before = Date.now()
    release.resolve()
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    await until(() => w.stats().inFlight === 0, 'the task to end')
    expect(stages).toEqual(['fetch', 'decode', 'encode', 'store', 'report'])
    expect(w.stats().busyLoops).toBe(0)
    expect(w.stats().lastTaskAt).toBeGreaterThanOrEqual(before)
    expect(w.history(0).reduce((n, minute) => n + minute.done, 0)).toBe(1)
  })

  test('a claim that fails names its problem in the stats until a claim succeeds', async () => {
    const cluster = fakeCluster()
    cluster.failNext['/getNewTask'] = 1
    const w = start(cluster, { threads: 1, errorWaitMs: 50 })
    await until(() => w.stats().claimProblem !== undefined, 'the claim problem')
    expect(w.stats().claimProblem).toMatch(/asking the master for a task fails/)
    await until(() => w.stats().claimProblem === undefined, 'the next claim to succeed')
  })

  test('an undecodable image is reported failed with the reason, and the loop goes on', async () => {
    const cluster = fakeCluster()
    const bad = cluster.addTask(new TextEncoder().encode('this is not a PNG at all'))
    const good = cluster.addTask(PNG)
    const w = start(cluster, { threads: 1 })
    await until(() => cluster.tasks[good]!.state === 2, 'the next task finished')
    expect(cluster.tasks[bad]).toMatchObject({ state: 3, error: expect.stringMatching(/not a decodable PNG/) })
    expect(cluster.calls.some((c) => c.startsWith(`/registerTaskFailed?id=${bad}&`) && c.endsWith(`lease=L${bad}`))).toBe(true)
    expect(cluster.images.has(`finished/${bad}`)).toBe(false)
    expect(w.stats()).toMatchObject({ processed: 1, failed: 1 })
  })

  test('a missing working image is reported failed instead of retried forever', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    cluster.images.delete(`working/${id}`)
    start(cluster)
    await until(() => cluster.tasks[id]!.state === 3, 'task failed')
    expect(cluster.tasks[id]!.error).toMatch(/working image cannot be fetched: no such image/)
  })

  test('a peer error: the loop logs, waits about 2 s and goes on (mid-task it retries the step)', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    cluster.failNext['/getNewTask'] = 2
    cluster.failNext['/sendImage'] = 1
    const waits: number[] = []
    const w = start(cluster, {
      threads: 1,
      // Moves time instead of sleeping: records the wait, yields, returns.
      sleep: async (ms) => {
        waits.push(ms)
        await Bun.sleep(1)
      },
    })
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    const errorWaits = waits.filter((ms) => ms >= 1000)
    expect(errorWaits).toHaveLength(3)
    for (const ms of errorWaits) expect(ms).toBeWithin(1800, 2201)
    expect(cluster.callsFor(id)).toEqual(['/getImage', '/sendImage', '/sendImage', '/registerTaskFinished'])
    expect(w.stats()).toMatchObject({ processed: 1, peerErrors: 3 })
  })

  test('with no task the loop backs off from the initial wait up to the longest', async () => {
    const cluster = fakeCluster()
    const waits: number[] = []
    start(cluster, {
      threads: 1,
      idle: { initialMs: 50, maxMs: 1000 },
      random: () => 0.5,
      sleep: async (ms) => {
        waits.push(ms)
        await Bun.sleep(1)
      },
    })
    await until(() => waits.length >= 8, 'eight idle waits')
    expect(waits.slice(0, 8)).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000])
  })

  test('a loop that claims a task wakes the idle ones, which start their back-off again', async () => {
    const cluster = fakeCluster()
    const sleepers: { ms: number; wake: () => void }[] = []
    const gate = deferred()
    let swaps = 0
    start(cluster, {
      idle: { initialMs: 50, maxMs: 1000 },
      // The first task holds its loop, so only the other loop can take the second one.
      swap: async () => (swaps++ === 0 && (await gate.promise), PNG),
      random: () => 0.5,
      // Sleeps until released by hand or aborted.
      sleep: (ms, signal) =>
        new Promise((resolve) => {
          sleepers.push({ ms, wake: () => resolve() })
          signal?.addEventListener('abort', () => resolve(), { once: true })
        }),
    })
    await until(() => sleepers.length === 2, 'both loops idle')
    const first = cluster.addTask(PNG)
    const second = cluster.addTask(PNG)
    sleepers[0]!.wake()
    // Nobody releases the second loop's 50 ms sleep: the first loop's claim wakes it.
    await until(() => cluster.tasks[second]!.state === 2, 'the second task finished')
    expect(cluster.tasks[first]!.state).toBe(1)
    gate.resolve()
    await until(() => cluster.tasks[first]!.state === 2, 'the first task finished')
    expect(sleepers.slice(0, 2).map((s) => s.ms)).toEqual([50, 50])
    await until(() => sleepers.length >= 4, 'both loops idle again')
    expect(sleepers.slice(2).every((s) => s.ms === 50)).toBe(true)
  })

  test('close() lets the task in flight finish, claims nothing new, and is idempotent', async () => {
    const cluster = fakeCluster()
    const first = cluster.addTask(PNG)
    const gate = deferred()
    const w = start(cluster, {
      threads: 1,
      swap: async (png, options) => {
        await gate.promise
        const { swapRedGreen } = await import('../../src/roles/worker/image-work.ts')
        return swapRedGreen(png, options)
      },
    })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    const second = cluster.addTask(PNG)
    const claims = cluster.calls.filter((c) => c.startsWith('/getNewTask')).length
    let closed = false
    const closing = w.close().then(() => (closed = true))
    expect(w.close()).toBe(w.close())
    await Bun.sleep(30)
    expect(closed).toBe(false)
    gate.resolve()
    await closing
    expect(cluster.tasks[first]!.state).toBe(2)
    expect(cluster.tasks[second]!.state).toBe(0)
    expect(cluster.calls.filter((c) => c.startsWith('/getNewTask')).length).toBe(claims)
  })

  test('close() wakes a loop sleeping after a peer error at once', async () => {
    const cluster = fakeCluster()
    cluster.failNext['/getNewTask'] = 100
    const w = start(cluster, { errorWaitMs: 60_000 })
    await until(() => w.stats().peerErrors >= 2, 'both loops waiting')
    const started = performance.now()
    await w.close()
    expect(performance.now() - started).toBeLessThan(100)
  })

  test('close() gives up on a hung task after its limit and releases it at once, not after its lease', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    const w = start(cluster, { threads: 1, closeTimeoutMs: 50, swap: () => new Promise(() => {}) })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    await w.close()
    expect(w.stats()).toMatchObject({ abandoned: 1, inFlight: 0, failed: 0 })
    expect(cluster.calls).toContain(`/releaseTask?id=${id}&lease=L${id}`)
    expect(cluster.tasks[id]!.state).toBe(0)
  })

  test('the lease is renewed while a slow task is worked on', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    // A 90 ms lease renews every 30 ms; the image work takes 200 ms.
    const w = start(cluster, { leaseSeconds: 0.09, swap: async () => (await Bun.sleep(200), PNG) })
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    const renewals = cluster.calls.filter((c) => c === `/renewTask?id=${id}&lease=L${id}`).length
    expect(renewals).toBeGreaterThanOrEqual(4)
    expect(w.stats().renewals).toBe(renewals)
    await Bun.sleep(70)
    expect(cluster.calls.filter((c) => c.startsWith('/renewTask')).length).toBe(renewals)
  })

  test('a refused renewal (the lease went to another worker) abandons the task without storing or reporting it', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    const w = start(cluster, { leaseSeconds: 0.03, swap: async () => (await Bun.sleep(100), PNG) })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    cluster.tasks[id]!.lease = 'someone-else'
    await until(() => w.stats().abandoned === 1, 'task abandoned')
    expect(cluster.callsFor(id)).not.toContain('/sendImage')
    expect(cluster.callsFor(id)).not.toContain('/registerTaskFinished')
    expect(cluster.tasks[id]).toMatchObject({ state: 1, lease: 'someone-else' })
  })

  test('a claim without a lease token (an original master) is never renewed and is reported without one', async () => {
    const cluster = fakeCluster({ leases: false })
    const id = cluster.addTask(PNG)
    start(cluster, { leaseSeconds: 0.03, swap: async () => (await Bun.sleep(60), PNG) })
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    expect(cluster.calls.some((c) => c.startsWith('/renewTask'))).toBe(false)
    expect(cluster.calls.some((c) => new RegExp(`^/registerTaskFinished\\?id=${id}&ms=\\d+$`).test(c))).toBe(true)
  })

  test('against an original master, an undecodable image is reported once, then left to its lease; the loop goes on', async () => {
    const cluster = fakeCluster({ original: true, leases: false })
    const bad = cluster.addTask(new TextEncoder().encode('this is not a PNG at all'))
    const good = cluster.addTask(PNG)
    const w = start(cluster, { threads: 1, errorWaitMs: 5 })
    await until(() => cluster.tasks[good]!.state === 2, 'the next task finished')
    // Not retried: /registerTaskFailed is a path the original master does not have.
    expect(cluster.callsFor(bad)).toEqual(['/getImage', '/registerTaskFailed'])
    expect(cluster.tasks[bad]!.state).toBe(1)
    expect(w.stats()).toMatchObject({ processed: 1, failed: 1, peerErrors: 0 })
  })

  test('a master that hands out lease tokens but cannot renew them: renewal stops at the first answer, the task finishes', async () => {
    const cluster = fakeCluster({ original: true })
    const id = cluster.addTask(PNG)
    // Renewals every 10 ms over a 100 ms swap would be about ten calls.
    start(cluster, { leaseSeconds: 0.03, swap: async () => (await Bun.sleep(100), PNG) })
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    expect(cluster.calls.filter((c) => c.startsWith('/renewTask')).length).toBe(1)
  })

  test('`Error: No non-started task.` with status 200 (an original master passing the database on) is no task, not a failure', async () => {
    const cluster = fakeCluster({ original: true })
    const w = start(cluster, { threads: 1 })
    await until(() => cluster.calls.filter((c) => c.startsWith('/getNewTask')).length >= 3, 'a few idle claims')
    const id = cluster.addTask(PNG)
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    expect(w.stats()).toMatchObject({ peerErrors: 0, processed: 1 })
  })

  test('an idle worker holds one claim at the master: a task that comes after a quiet spell is claimed at once, with no polling', async () => {
    const cluster = fakeCluster({ holdClaims: true })
    const w = start(cluster, { threads: 1, claimWaitSeconds: 10 })
    await Bun.sleep(300)
    // One call held the whole time (back-off polling would have made a dozen by now).
    expect(cluster.calls.filter((c) => c.startsWith('/getNewTask'))).toEqual(['/getNewTask?wait=10'])
    const added = performance.now()
    const id = cluster.addTask(PNG)
    await until(() => cluster.tasks[id]!.state >= 1, 'the task claimed')
    expect(performance.now() - added).toBeLessThan(1000)
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    // close() ends the held claim at once rather than after its 10 s.
    const closing = performance.now()
    await w.close()
    expect(performance.now() - closing).toBeLessThan(1000)
    expect(w.stats().peerErrors).toBe(0)
  })

  /** The cluster's storage, with the store of `held` results waiting for `gate` (for ever if it never opens). */
  function holdStores(cluster: FakeCluster, held: readonly number[], gate: Promise<void>): Pick<StorageClient, 'get' | 'send'> {
    return {
      get: (...args) => cluster.storage.get(...args),
      send: async (id, ...rest) => {
        if (held.includes(id)) await gate
        return cluster.storage.send(id, ...rest)
      },
    }
  }

  test('a loop claims and decodes its next task while the previous result is stored and reported, one store at a time', async () => {
    const cluster = fakeCluster()
    const [a, b, c] = [cluster.addTask(PNG), cluster.addTask(PNG), cluster.addTask(PNG)]
    const gate = deferred()
    let swaps = 0
    // A 60 ms lease renews every 20 ms.
    const w = start(cluster, { threads: 1, leaseSeconds: 0.06, storage: holdStores(cluster, [a], gate.promise), swap: async () => (swaps++, PNG) })
    await until(() => swaps === 2, 'the second task decoded while the first is being stored')
    await Bun.sleep(80)
    // The third waits: a loop holds at most the task being stored and the one decoded behind it.
    expect(cluster.tasks.map((t) => t.state)).toEqual([1, 1, 0])
    expect(cluster.callsFor(b).filter((call) => call !== '/renewTask')).toEqual(['/getImage'])
    expect(w.stats().inFlight).toBe(2)
    // The lease of the task being stored is still renewed: it is ours until the finish is reported.
    expect(cluster.callsFor(a).filter((call) => call === '/renewTask').length).toBeGreaterThanOrEqual(2)
    gate.resolve()
    await until(() => cluster.tasks.every((t) => t.state === 2), 'all three finished')
    // b is stored only once a is reported, and c claimed only then.
    const finishedA = cluster.calls.findIndex((call) => call.startsWith(`/registerTaskFinished?id=${a}&`))
    expect(cluster.calls.findIndex((call) => call.startsWith(`/sendImage?id=${b}&`))).toBeGreaterThan(finishedA)
    expect(cluster.calls.slice(0, finishedA).filter((call) => call.startsWith('/getNewTask'))).toHaveLength(2)
    expect(w.stats()).toMatchObject({ processed: 3, inFlight: 0 })
  })

  test('a loop fetches its next task while the current image is in the codec, and swaps one image at a time', async () => {
    const cluster = fakeCluster()
    const [a, b, c] = [cluster.addTask(PNG), cluster.addTask(PNG), cluster.addTask(PNG)]
    const gates = [deferred(), deferred(), deferred()]
    let started = 0
    let inCodec = 0
    let mostInCodec = 0
    const swap = async () => {
      const gate = gates[started++]!
      mostInCodec = Math.max(mostInCodec, ++inCodec)
      await gate.promise
      inCodec--
      return PNG
    }
    const w = start(cluster, { threads: 1, swap })
    await until(() => started === 1 && cluster.callsFor(b).includes('/getImage'), 'the second image fetched while the first is in the codec')
    await Bun.sleep(20)
    // b waits for the codec, and c for b to get it.
    expect(started).toBe(1)
    expect(cluster.callsFor(a)).toEqual(['/getImage'])
    expect(cluster.tasks[c]!.state).toBe(0)
    gates[0]!.resolve()
    await until(() => started === 2 && cluster.callsFor(c).includes('/getImage'), 'the third fetched while the second is in the codec')
    expect(cluster.tasks[a]!.state).toBe(2)
    gates[1]!.resolve()
    gates[2]!.resolve()
    await until(() => cluster.tasks.every((t) => t.state === 2), 'all three finished')
    expect(mostInCodec).toBe(1)
    expect(w.stats()).toMatchObject({ processed: 3, inFlight: 0 })
  })

  test('close() waits for the result being stored and the task decoded behind it, and claims nothing more', async () => {
    const cluster = fakeCluster()
    const [a, b, c] = [cluster.addTask(PNG), cluster.addTask(PNG), cluster.addTask(PNG)]
    const gate = deferred()
    let swaps = 0
    const w = start(cluster, { threads: 1, storage: holdStores(cluster, [a], gate.promise), swap: async () => (swaps++, PNG) })
    await until(() => swaps === 2, 'the second task decoded')
    let closed = false
    const closing = w.close().then(() => (closed = true))
    await Bun.sleep(30)
    expect(closed).toBe(false)
    gate.resolve()
    await closing
    expect([cluster.tasks[a]!.state, cluster.tasks[b]!.state, cluster.tasks[c]!.state]).toEqual([2, 2, 0])
    expect(w.stats()).toMatchObject({ processed: 2, inFlight: 0 })
  })

  test('close() past its limit releases both the task being stored and the one decoded behind it', async () => {
    const cluster = fakeCluster()
    const [a, b] = [cluster.addTask(PNG), cluster.addTask(PNG)]
    let swaps = 0
    const w = start(cluster, { threads: 1, closeTimeoutMs: 50, storage: holdStores(cluster, [a], new Promise(() => {})), swap: async () => (swaps++, PNG) })
    await until(() => swaps === 2, 'the second task decoded')
    await w.close()
    expect(cluster.calls).toEqual(expect.arrayContaining([`/releaseTask?id=${a}&lease=L${a}`, `/releaseTask?id=${b}&lease=L${b}`]))
    expect([cluster.tasks[a]!.state, cluster.tasks[b]!.state]).toEqual([0, 0])
    expect(w.stats()).toMatchObject({ abandoned: 2, inFlight: 0, processed: 0 })
  })

  test('the time limit does not count a task’s wait for the codec held by the task before it', async () => {
    const cluster = fakeCluster()
    const [a, b] = [cluster.addTask(PNG), cluster.addTask(PNG)]
    // Each swap takes 70 % of the limit: b, fetched while a is in the codec, waits about that long first.
    const w = start(cluster, { threads: 1, taskTimeoutMs: 300, swap: async () => (await Bun.sleep(210), PNG) })
    await until(() => cluster.tasks.every((t) => t.state >= 2), 'both ended')
    expect([cluster.tasks[a]!.state, cluster.tasks[b]!.state]).toEqual([2, 2])
    expect(w.stats()).toMatchObject({ processed: 2, failed: 0 })
  })

  test('a task over its time limit is reported failed and the loop goes on', async () => {
    const cluster = fakeCluster()
    const hung = cluster.addTask(PNG)
    let calls = 0
    const w = start(cluster, { threads: 1, taskTimeoutMs: 50, swap: () => (calls++ === 0 ? new Promise(() => {}) : Promise.resolve(PNG)) })
    const next = cluster.addTask(PNG)
    await until(() => cluster.tasks[next]!.state === 2, 'the next task finished')
    expect(cluster.tasks[hung]).toMatchObject({ state: 3, error: 'the task took longer than 50 ms' })
    expect(w.stats()).toMatchObject({ processed: 1, failed: 1 })
  })
})
