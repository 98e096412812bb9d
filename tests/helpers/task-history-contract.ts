// The contract of what every TaskStore keeps for an operator's console: each task's timeline, per-minute figures, paging.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { FIGURES_KEPT_MS, type TaskEvent, type TaskStore, type TaskStoreOptions } from '../../src/roles/database/task-store.ts'
import type { TaskStoreEnv } from './task-store-contract.ts'

/** The events' names, in order. */
const names = (events: readonly TaskEvent[] | undefined) => events?.map((e) => e.event)

export function taskHistoryContract(name: string, setup: () => TaskStoreEnv) {
  describe(`TaskStore timelines and figures: ${name}`, () => {
    let env: TaskStoreEnv
    let store: TaskStore
    let clock: number
    const options = (): TaskStoreOptions => ({ leaseSeconds: 10, maxAttempts: 2, now: () => clock })
    /** A minute's start, so that tests know which minute each change falls in. */
    const T0 = Date.UTC(2026, 0, 1, 12, 0)
    beforeEach(() => {
      clock = T0
      env = setup()
      store = env.open(options())
    })
    afterEach(async () => {
      await store.close().catch(() => {})
      env.cleanup()
    })

    test('a task’s timeline: created, claimed with its attempt, finished with the time from claim to finish', async () => {
      const id = await store.create()
      clock += 500
      const claim = (await store.claim()).claim!
      clock += 1234
      await store.finish(id, claim.leaseToken)
      expect(await store.events(id)).toEqual([
        { at: T0, event: 'created' },
        { at: T0 + 500, event: 'claimed', attempt: 1 },
        { at: T0 + 1734, event: 'finished', attempt: 1, ms: 1234 },
      ])
    })

    test('a held task has no timeline; activating it records `created` then, once', async () => {
      const id = await store.create({ ready: false })
      expect(await store.events(id)).toBeUndefined()
      clock += 3000
      await store.activate(id)
      await store.activate(id)
      expect(await store.events(id)).toEqual([{ at: T0 + 3000, event: 'created' }])
    })

    test('failed attempts, with their errors: back to waiting, then failed for good; an operator’s retry starts again at attempt 1', async () => {
      const id = await store.create()
      await store.claim()
      clock += 10
      await store.fail(id, 'cannot decode')
      await store.claim()
      clock += 10
      await store.fail(id, 'cannot decode again')
      clock += 10
      await store.retry(id)
      await store.claim()
      expect(await store.events(id)).toEqual([
        { at: T0, event: 'created' },
        { at: T0, event: 'claimed', attempt: 1 },
        { at: T0 + 10, event: 'failed', attempt: 1, error: 'cannot decode', forGood: false },
        { at: T0 + 10, event: 'claimed', attempt: 2 },
        { at: T0 + 20, event: 'failed', attempt: 2, error: 'cannot decode again', forGood: true },
        { at: T0 + 30, event: 'retried' },
        { at: T0 + 30, event: 'claimed', attempt: 1 },
      ])
    })

    test('a lease that ran out shows as lease_expired on the next read of the timeline, once, with no claim since', async () => {
      const id = await store.create()
      await store.claim()
      clock += 10_001
      const expired: TaskEvent = { at: T0 + 10_001, event: 'lease_expired', attempt: 1, forGood: false }
      expect((await store.events(id))?.at(-1)).toEqual(expired)
      expect((await store.events(id))?.filter((e) => e.event === 'lease_expired')).toEqual([expired])
      await store.claim()
      clock += 10_001
      // Seen by another read (the counts) this time; the last attempt's expiry fails the task for good.
      await store.countByState()
      expect(names(await store.events(id))).toEqual(['created', 'claimed', 'lease_expired', 'claimed', 'lease_expired'])
      expect((await store.events(id))?.at(-1)).toEqual({ at: T0 + 20_002, event: 'lease_expired', attempt: 2, forGood: true })
    })

    test('a release gives the claim back with no attempt counted: the next claim has the same attempt number', async () => {
      const id = await store.create()
      const claim = (await store.claim()).claim!
      clock += 5
      await store.release(id, claim.leaseToken)
      await store.claim()
      expect((await store.events(id))?.slice(1)).toEqual([
        { at: T0, event: 'claimed', attempt: 1 },
        { at: T0 + 5, event: 'released', attempt: 1 },
        { at: T0 + 5, event: 'claimed', attempt: 1 },
      ])
    })

    test('states set through the original /setById show as what they amount to', async () => {
      const id = await store.create()
      await store.setState(id, 1)
      clock += 40
      await store.setState(id, 2)
      await store.setState(id, 2)
      await store.setState(id, 0)
      expect((await store.events(id))?.slice(1)).toEqual([
        { at: T0, event: 'claimed', attempt: 1 },
        { at: T0 + 40, event: 'finished', attempt: 1, ms: 40 },
        { at: T0 + 40, event: 'retried' },
      ])
      // Counted as the same changes through the worker API would be: one finish, in (25, 50] ms.
      expect((await store.figures({ from: T0, to: clock })).minutes).toEqual([
        { minute: T0, created: 1, finished: 1, failed: 0, failedForGood: 0, processing: [0, 0, 1, ...new Array(10).fill(0)] },
      ])
    })

    test('unknown ids and tasks taken for removal have no timeline; the events go with the task', async () => {
      expect(await store.events(5)).toBeUndefined()
      const id = await store.create()
      await store.claim()
      await store.finish(id)
      await store.markOneForRemoval(id)
      expect(await store.events(id)).toBeUndefined()
      expect(await store.removeMarked([id])).toBe(1)
      expect(await store.events(id)).toBeUndefined()
      // Another task's timeline is untouched.
      expect(names(await store.events(await store.create()))).toEqual(['created'])
    })

    test('200 concurrent claims over 100 tasks record exactly one `claimed` per claim', async () => {
      for (let i = 0; i < 100; i++) await store.create()
      const results = await Promise.all(Array.from({ length: 200 }, () => store.claim()))
      expect(results.filter((r) => r.claim).length).toBe(100)
      for (let id = 0; id < 100; id++)
        expect(await store.events(id)).toEqual([
          { at: T0, event: 'created' },
          { at: T0, event: 'claimed', attempt: 1 },
        ])
    })

    test('per-minute figures: created, finished, failed attempts (leases that ran out too), failed for good, processing times by bucket', async () => {
      const ids = []
      for (let i = 0; i < 4; i++) ids.push(await store.create())
      const held = await store.create({ ready: false })
      clock += 60_000
      await store.activate(held)
      // Minute 1: three finished after 7, 30 and 30 ms; one failure back to waiting; one lease claimed.
      for (const ms of [7, 30, 30]) {
        const claim = (await store.claim()).claim!
        clock += ms
        await store.finish(claim.task.id, claim.leaseToken)
      }
      const failing = (await store.claim()).claim!
      await store.fail(failing.task.id, 'boom')
      await store.claim()
      // Minute 2: the lease runs out on the second attempt, failing the task for good.
      clock = T0 + 2 * 60_000 + 5_000
      await store.countByState()
      const { minutes } = await store.figures({ from: T0, to: clock })
      const zeros = new Array(13).fill(0)
      expect(minutes).toEqual([
        { minute: T0, created: 4, finished: 0, failed: 0, failedForGood: 0, processing: zeros },
        { minute: T0 + 60_000, created: 1, finished: 3, failed: 1, failedForGood: 0, processing: [1, 0, 2, ...zeros.slice(3)] },
        { minute: T0 + 120_000, created: 0, finished: 0, failed: 1, failedForGood: 1, processing: zeros },
      ])
      expect((await store.figures({ from: T0 + 60_000, to: T0 + 60_000 })).minutes.map((m) => m.minute)).toEqual([T0 + 60_000])
    })

    test('the queue’s depth is sampled per minute, the latest sample of a minute staying; figures older than 48 hours are dropped', async () => {
      for (let i = 0; i < 3; i++) await store.create()
      await store.sampleQueue()
      await store.claim()
      clock += 5_000
      await store.sampleQueue()
      // A minute on, the first claim's lease has run out: the sample counts it waiting again.
      clock += 60_000
      await store.create()
      await store.claim()
      await store.sampleQueue()
      expect((await store.figures({ from: T0, to: clock })).samples).toEqual([
        { minute: T0, at: T0 + 5_000, waiting: 2, inProgress: 1 },
        { minute: T0 + 60_000, at: T0 + 65_000, waiting: 3, inProgress: 1 },
      ])
      // Two days on: the first minute's figures and samples go at the next sample, the second minute's a minute later.
      clock = T0 + FIGURES_KEPT_MS + 30_000
      await store.sampleQueue()
      const kept = await store.figures({ from: T0, to: clock })
      expect(kept.samples.map((s) => s.minute)).toEqual([T0 + 60_000, T0 + FIGURES_KEPT_MS])
      // Each lease that ran out is a failed attempt of the minute it was seen in.
      expect(kept.minutes.map((m) => [m.minute, m.failed])).toEqual([
        [T0 + 60_000, 1],
        [T0 + FIGURES_KEPT_MS, 1],
      ])
      clock += 60_000
      await store.sampleQueue()
      expect((await store.figures({ from: T0, to: clock })).minutes.map((m) => m.minute)).toEqual([T0 + FIGURES_KEPT_MS])
    })

    test('pages of the task list with `before`: newest first, in one state or all, unmoved by new tasks', async () => {
      for (let i = 0; i < 10; i++) await store.create()
      for (let i = 0; i < 4; i++) await store.claim()
      const ids = async (options: { state?: 0 | 1; before?: number }) => (await store.recent({ limit: 3, ...options })).map((t) => t.id)
      expect(await ids({})).toEqual([9, 8, 7])
      expect(await ids({ before: 7 })).toEqual([6, 5, 4])
      for (let i = 0; i < 5; i++) await store.create()
      expect(await ids({ before: 4 })).toEqual([3, 2, 1])
      expect(await ids({ before: 1 })).toEqual([0])
      expect(await ids({ before: 0 })).toEqual([])
      expect(await ids({ state: 1, before: 3 })).toEqual([2, 1, 0])
      expect(await ids({ state: 0, before: 9 })).toEqual([8, 7, 6])
      expect(await ids({ state: 0, before: 100 })).toEqual([14, 13, 12])
    })
  })
}
