// The worker's loops against an in-process fake master and storage, through the real peer clients. Waits, renewals
// and time limits run on a manual clock that the test moves; only the codec (sharp, off the JavaScript thread) takes
// real time, and the tests poll for its results.
import { afterEach, describe, expect, test } from 'bun:test'
import sharp from 'sharp'
import type { StorageClient } from '../../src/clients/storage-client.ts'
import { createWorker, type Worker, type WorkerOptions } from '../../src/roles/worker/worker.ts'
import { sleep } from '../../src/shared/async.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { type ManualClock, manualClock } from '../helpers/manual-clock.ts'
import { encodePng } from '../helpers/png.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { type FakeCluster, fakeCluster } from '../helpers/worker-fakes.ts'

/** A 3x2 RGB image with known pixels. */
const RGB = [
  [
    [10, 200, 30],
    [255, 0, 7],
    [1, 2, 3],
  ],
  [
    [0, 0, 0],
    [90, 91, 92],
    [250, 5, 128],
  ],
]
const PNG = encodePng(3, 2, 2, 8, RGB)

const until = (condition: () => boolean, what: string, ms = 3000) => waitFor(what, condition, ms, 2).then(() => {})

/** The waits after a peer's failure (2 s jittered) among the clock's timers: longer than the idle back-off, shorter than a renewal. */
const errorWaits = (clock: ManualClock) => clock.scheduled.filter((ms) => ms >= 1000 && ms < 10_000)

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
    // On a manual clock the idle loops' waits run one by one as the test moves time: few and long, so a move of minutes stays quick.
    idle: extra.clock ? { initialMs: 50, maxMs: 30_000 } : { initialMs: 2, maxMs: 10 },
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
    const { data } = await sharp(cluster.images.get(`finished/${id}`)!)
      .ensureAlpha(1)
      .raw()
      .toBuffer({ resolveWithObject: true })
    expect([...data]).toEqual(RGB.flat().flatMap(([r, g, b]) => [g!, r!, b!, 255]))
    expect(w.stats()).toMatchObject({ processed: 1, failed: 0, inFlight: 0 })
  })

  test('every stage of a task runs through the stage runner in order; stats say when a task last ended and which loops are busy', async () => {
    const cluster = fakeCluster()
    const stages: string[] = []
    const release = deferred()
    const w = start(cluster, {
      threads: 3,
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
    const clock = manualClock()
    const w = start(cluster, { threads: 1, errorWaitMs: 50, clock })
    await until(() => w.stats().claimProblem !== undefined, 'the claim problem')
    expect(w.stats().claimProblem).toMatch(/asking the master for a task fails/)
    await clock.advance(55)
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
    const clock = manualClock()
    // Idle waits stay under a second, apart from the error waits.
    const w = start(cluster, { threads: 1, idle: { initialMs: 50, maxMs: 500 }, clock })
    // Each failure is followed by one wait, and nothing is tried again until that wait has passed.
    for (const waits of [1, 2, 3]) {
      await until(() => errorWaits(clock).length === waits, `wait ${waits}`)
      expect(cluster.tasks[id]!.state).toBe(waits < 3 ? 0 : 1)
      await clock.advance(2200)
    }
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    expect(errorWaits(clock)).toHaveLength(3)
    for (const ms of errorWaits(clock)) expect(ms).toBeWithin(1800, 2201)
    expect(cluster.callsFor(id)).toEqual(['/getImage', '/sendImage', '/sendImage', '/registerTaskFinished'])
    expect(w.stats()).toMatchObject({ processed: 1, peerErrors: 3 })
  })

  test('with no task the loop backs off from the initial wait up to the longest', async () => {
    const cluster = fakeCluster()
    const clock = manualClock()
    start(cluster, { threads: 1, idle: { initialMs: 50, maxMs: 1000 }, random: () => 0.5, clock })
    for (let n = 1; n <= 8; n++) {
      await until(() => clock.scheduled.length === n, `idle wait ${n}`)
      await clock.advance(clock.scheduled[n - 1]!)
    }
    expect(clock.scheduled.slice(0, 8)).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000])
  })

  test('a loop that claims a task wakes the idle ones, which start their back-off again', async () => {
    const cluster = fakeCluster()
    const clock = manualClock()
    const gate = deferred()
    let swaps = 0
    // The first two idle waits are 25 and 75 ms (the jitter's ends), every later one its middle.
    const jitters = [0, 0.999]
    start(cluster, {
      idle: { initialMs: 50, maxMs: 1000 },
      // The first task holds its loop, so only the other loop can take the second one.
      swap: async () => {
        if (swaps++ === 0) await gate.promise
        return PNG
      },
      random: () => jitters.shift() ?? 0.5,
      clock,
    })
    const idleWaits = () => clock.scheduled.filter((ms) => ms < 1000)
    await until(() => idleWaits().length === 2, 'both loops idle')
    expect(idleWaits().toSorted((a, b) => a - b)).toEqual([25, 75])
    const first = cluster.addTask(PNG)
    const second = cluster.addTask(PNG)
    // Only the 25 ms wait comes due; the clock stays there, short of the other loop's 75 ms: the first loop's claim wakes it.
    await clock.advance(25)
    await until(() => cluster.tasks[second]!.state === 2, 'the second task finished')
    expect(cluster.tasks[first]!.state).toBe(1)
    gate.resolve()
    await until(() => cluster.tasks[first]!.state === 2, 'the first task finished')
    await until(() => idleWaits().length >= 4, 'both loops idle again')
    // Back at the initial wait, not doubled to 100.
    expect(idleWaits().slice(2)).toEqual([50, 50])
  })

  test('close() lets the task in flight finish, claims nothing new, and is idempotent', async () => {
    const cluster = fakeCluster()
    const first = cluster.addTask(PNG)
    const gate = deferred()
    const clock = manualClock()
    const w = start(cluster, {
      threads: 1,
      clock,
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
    // Up to its limit (1000 ms here), close() waits for the task.
    await clock.advance(999)
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
    const clock = manualClock()
    const w = start(cluster, { errorWaitMs: 60_000, clock })
    await until(() => w.stats().peerErrors >= 2 && clock.pending() === 2, 'both loops waiting')
    let closed = false
    void w.close().then(() => (closed = true))
    // Without the clock moving at all: the waits end on the abort, and their timers are gone.
    await clock.settle()
    expect(closed).toBe(true)
    expect(clock.pending()).toBe(0)
  })

  test('close() gives up on a hung task after its limit and releases it at once, not after its lease', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    const clock = manualClock()
    const w = start(cluster, { threads: 1, closeTimeoutMs: 50, swap: () => new Promise(() => {}), clock })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    const closing = w.close()
    await clock.advance(50)
    await closing
    expect(w.stats()).toMatchObject({ abandoned: 1, inFlight: 0, failed: 0 })
    expect(cluster.calls).toContain(`/releaseTask?id=${id}&lease=L${id}`)
    expect(cluster.tasks[id]!.state).toBe(0)
  })

  test('the lease is renewed while a slow task is worked on', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    const clock = manualClock()
    const gate = deferred()
    // A 60 s lease renews every 20 s; the image work takes 85 s.
    const w = start(cluster, {
      leaseSeconds: 60,
      swap: async () => {
        await gate.promise
        return PNG
      },
      clock,
    })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    const renewals = () => cluster.calls.filter((c) => c === `/renewTask?id=${id}&lease=L${id}`).length
    await clock.advance(19_999)
    expect(renewals()).toBe(0)
    await clock.advance(65_001)
    expect(renewals()).toBe(4)
    gate.resolve()
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    expect(w.stats().renewals).toBe(4)
    // The renewal stops with the task.
    await clock.advance(60_000)
    expect(cluster.calls.filter((c) => c.startsWith('/renewTask')).length).toBe(4)
  })

  test('a refused renewal (the lease went to another worker) abandons the task without storing or reporting it', async () => {
    const cluster = fakeCluster()
    const id = cluster.addTask(PNG)
    const clock = manualClock()
    const w = start(cluster, { leaseSeconds: 60, swap: () => new Promise(() => {}), clock })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    cluster.tasks[id]!.lease = 'someone-else'
    await clock.advance(20_000)
    await until(() => w.stats().abandoned === 1, 'task abandoned')
    expect(cluster.callsFor(id)).not.toContain('/sendImage')
    expect(cluster.callsFor(id)).not.toContain('/registerTaskFinished')
    expect(cluster.tasks[id]).toMatchObject({ state: 1, lease: 'someone-else' })
  })

  test('a claim without a lease token (an original master) is never renewed and is reported without one', async () => {
    const cluster = fakeCluster({ leases: false })
    const id = cluster.addTask(PNG)
    const clock = manualClock()
    const gate = deferred()
    const w = start(cluster, {
      leaseSeconds: 60,
      swap: async () => {
        await gate.promise
        return PNG
      },
      clock,
    })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    await clock.advance(100_000)
    gate.resolve()
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
    const clock = manualClock()
    const gate = deferred()
    // Renewals every 20 s over a 100 s swap would be five calls.
    const w = start(cluster, {
      leaseSeconds: 60,
      swap: async () => {
        await gate.promise
        return PNG
      },
      clock,
    })
    await until(() => w.stats().inFlight === 1, 'a task in flight')
    await clock.advance(100_000)
    gate.resolve()
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
    const clock = manualClock()
    const cluster = fakeCluster({ holdClaims: true, clock })
    const w = start(cluster, { threads: 1, claimWaitSeconds: 10, clock })
    await until(() => cluster.calls.length === 1, 'the first claim')
    await clock.advance(9_000)
    // One call held the whole time (back-off polling would have made a dozen by now).
    expect(cluster.calls.filter((c) => c.startsWith('/getNewTask'))).toEqual(['/getNewTask?wait=10'])
    const id = cluster.addTask(PNG)
    // Claimed without the clock moving.
    await clock.settle()
    expect(cluster.tasks[id]!.state).toBeGreaterThanOrEqual(1)
    await until(() => cluster.tasks[id]!.state === 2, 'task finished')
    await until(() => cluster.calls.filter((c) => c.startsWith('/getNewTask')).length === 2, 'the next held claim')
    // close() ends the held claim at once rather than after its 10 s.
    let closed = false
    void w.close().then(() => (closed = true))
    await clock.settle()
    expect(closed).toBe(true)
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
    const [a, b, _c] = [cluster.addTask(PNG), cluster.addTask(PNG), cluster.addTask(PNG)]
    const gate = deferred()
    let swaps = 0
    const clock = manualClock()
    // A 60 s lease renews every 20 s.
    const w = start(cluster, {
      threads: 1,
      leaseSeconds: 60,
      storage: holdStores(cluster, [a], gate.promise),
      swap: async () => {
        swaps++
        return PNG
      },
      clock,
    })
    await until(() => swaps === 2, 'the second task decoded while the first is being stored')
    await clock.advance(80_000)
    // The third waits: a loop holds at most the task being stored and the one decoded behind it.
    expect(cluster.tasks.map((t) => t.state)).toEqual([1, 1, 0])
    expect(cluster.callsFor(b).filter((call) => call !== '/renewTask')).toEqual(['/getImage'])
    expect(w.stats().inFlight).toBe(2)
    // The lease of the task being stored is still renewed: it is ours until the finish is reported.
    expect(cluster.callsFor(a).filter((call) => call === '/renewTask').length).toBe(4)
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
    const clock = manualClock()
    const w = start(cluster, { threads: 1, swap, clock })
    await until(() => started === 1 && cluster.callsFor(b).includes('/getImage'), 'the second image fetched while the first is in the codec')
    await clock.settle()
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
    const clock = manualClock()
    const w = start(cluster, {
      threads: 1,
      storage: holdStores(cluster, [a], gate.promise),
      swap: async () => {
        swaps++
        return PNG
      },
      clock,
    })
    await until(() => swaps === 2, 'the second task decoded')
    let closed = false
    const closing = w.close().then(() => (closed = true))
    await clock.advance(999)
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
    const clock = manualClock()
    const w = start(cluster, {
      threads: 1,
      closeTimeoutMs: 50,
      storage: holdStores(cluster, [a], new Promise(() => {})),
      swap: async () => {
        swaps++
        return PNG
      },
      clock,
    })
    await until(() => swaps === 2, 'the second task decoded')
    const closing = w.close()
    await clock.advance(50)
    await closing
    expect(cluster.calls).toEqual(expect.arrayContaining([`/releaseTask?id=${a}&lease=L${a}`, `/releaseTask?id=${b}&lease=L${b}`]))
    expect([cluster.tasks[a]!.state, cluster.tasks[b]!.state]).toEqual([0, 0])
    expect(w.stats()).toMatchObject({ abandoned: 2, inFlight: 0, processed: 0 })
  })

  test('the time limit does not count a task’s wait for the codec held by the task before it', async () => {
    const cluster = fakeCluster()
    const [a, b] = [cluster.addTask(PNG), cluster.addTask(PNG)]
    const clock = manualClock()
    // Each swap takes 70 % of the limit: b, fetched while a is in the codec, waits that long first.
    const w = start(cluster, {
      threads: 1,
      taskTimeoutMs: 300_000,
      swap: async () => {
        await sleep(210_000, undefined, clock)
        return PNG
      },
      clock,
    })
    await until(() => cluster.callsFor(b).includes('/getImage'), 'b fetched while a is in the codec')
    // b's limit counted from its claim would run out at 300 s, in the middle of its swap (210 s to 420 s).
    for (let s = 0; s < 500 && !cluster.tasks.every((t) => t.state >= 2); s += 10) await clock.advance(10_000)
    expect([cluster.tasks[a]!.state, cluster.tasks[b]!.state]).toEqual([2, 2])
    expect(w.stats()).toMatchObject({ processed: 2, failed: 0 })
  })

  test('a task over its time limit is reported failed and the loop goes on', async () => {
    const cluster = fakeCluster()
    const hung = cluster.addTask(PNG)
    let calls = 0
    const clock = manualClock()
    const w = start(cluster, { threads: 1, taskTimeoutMs: 50, swap: () => (calls++ === 0 ? new Promise(() => {}) : Promise.resolve(PNG)), clock })
    const next = cluster.addTask(PNG)
    await until(() => w.stats().inFlight === 2, 'the next task fetched behind the hung one')
    await clock.advance(49)
    expect(cluster.tasks[hung]!.state).toBe(1)
    await clock.advance(1)
    await until(() => cluster.tasks[next]!.state === 2, 'the next task finished')
    expect(cluster.tasks[hung]).toMatchObject({ state: 3, error: 'the task took longer than 50 ms' })
    expect(w.stats()).toMatchObject({ processed: 1, failed: 1 })
  })
})
