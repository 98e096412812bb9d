// The contract every TaskStore must keep: ids, claims, leases, attempts, held tasks, durability.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { LEASE_RAN_OUT, REMOVAL_LEASE_MS, type TaskState, type TaskStore, type TaskStoreOptions } from '../../src/roles/database/task-store.ts'
import { HttpError } from '../../src/shared/errors.ts'

export interface TaskStoreEnv {
  /** A store over the test's place, with the given options (the clock included). */
  open(options: TaskStoreOptions): TaskStore
  cleanup(): void
}

/** Resolves to the HTTP status an operation fails with. */
async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise
  } catch (error) {
    if (error instanceof HttpError) return error.status
    throw error
  }
  throw new Error('expected the call to fail')
}

export function taskStoreContract(name: string, setup: () => TaskStoreEnv) {
  describe(`TaskStore contract: ${name}`, () => {
    let env: TaskStoreEnv
    let store: TaskStore
    let clock: number
    /** Leases the store said ran out, summed. */
    let expiries: number
    const options = (): TaskStoreOptions => ({ leaseSeconds: 10, maxAttempts: 2, now: () => clock })
    beforeEach(() => {
      clock = 1_700_000_000_000
      expiries = 0
      env = setup()
      store = env.open(options())
      store.onLeasesExpired((n) => (expiries += n))
    })
    afterEach(async () => {
      await store.close().catch(() => {})
      env.cleanup()
    })

    test('ids count up from 0 and a new task is not started', async () => {
      expect(await store.create()).toBe(0)
      expect(await store.create()).toBe(1)
      const task = await store.get(1)
      expect(task).toMatchObject({ id: 1, state: 0, attempts: 0, error: null, leaseExpiresAt: null })
      expect(await store.get(2)).toBeUndefined()
    })

    test('claims hand out the oldest not-started task with a lease, then nothing', async () => {
      await store.create()
      await store.create()
      const first = await store.claim()
      expect(first.claim?.task).toMatchObject({ id: 0, state: 1, leaseExpiresAt: clock + 10_000 })
      expect(first.claim?.leaseToken).toBeString()
      expect((await store.claim()).claim?.task.id).toBe(1)
      expect((await store.claim()).claim).toBeUndefined()
    })

    test('a held task cannot be claimed until it is activated, and can be dropped', async () => {
      const held = await store.create({ ready: false })
      const other = await store.create({ ready: false })
      expect((await store.claim()).claim).toBeUndefined()
      await store.activate(held)
      expect((await store.claim()).claim?.task.id).toBe(held)
      await store.drop(other)
      expect(await store.get(other)).toBeUndefined()
      expect(await statusOf(store.drop(held))).toBe(409)
      // A dropped id is never handed out again.
      expect(await store.create()).toBe(2)
    })

    test('a held task is visible to no read or change but activate and drop, and a dropped id never comes back', async () => {
      const held = await store.create({ ready: false })
      const visible = await store.create()
      expect(await store.get(held)).toBeUndefined()
      expect((await store.recent({ limit: 10 })).map((t) => t.id)).toEqual([visible])
      expect((await store.recent({ state: 0, limit: 10 })).map((t) => t.id)).toEqual([visible])
      expect(await store.countByState()).toEqual({ 0: 1, 1: 0, 2: 0, 3: 0 })
      const listed: number[] = []
      for await (const task of store.list()) listed.push(task.id)
      expect(listed).toEqual([visible])
      expect(await statusOf(store.finish(held))).toBe(404)
      expect(await statusOf(store.setState(held, 2))).toBe(404)
      expect(await statusOf(store.retry(held))).toBe(404)
      // The upload failed: the id stays a gap, also once the store is opened again.
      await store.drop(held)
      await store.close()
      store = env.open(options())
      expect(await store.get(held)).toBeUndefined()
      expect(await store.create()).toBe(2)
      expect((await store.recent({ limit: 10 })).map((t) => t.id)).toEqual([2, visible])
    })

    test('finishing: only a task in progress; a second finish is a conflict that changes nothing', async () => {
      const id = await store.create()
      expect(await statusOf(store.finish(id))).toBe(409)
      await store.claim()
      expect((await store.finish(id)).state).toBe(2)
      expect(await statusOf(store.finish(id))).toBe(409)
      expect((await store.get(id))?.state).toBe(2)
      expect(await statusOf(store.finish(99))).toBe(404)
    })

    test('a lease that ran out puts the task back, counted as an attempt, and the old token no longer works', async () => {
      const id = await store.create()
      const first = (await store.claim()).claim!
      clock += 10_001
      const second = await store.claim()
      expect(expiries).toBe(1)
      expect(second.claim?.task).toMatchObject({ id, state: 1, attempts: 1 })
      expect(await statusOf(store.finish(id, first.leaseToken))).toBe(409)
      expect(await statusOf(store.fail(id, 'late', first.leaseToken))).toBe(409)
      expect((await store.finish(id, second.claim!.leaseToken)).state).toBe(2)
    })

    test('a lease that ran out shows on every read at once, with no claim since, and counts one attempt', async () => {
      const id = await store.create()
      const other = await store.create()
      const claim = (await store.claim()).claim!
      clock += 9_999
      expect((await store.get(id))?.state).toBe(1)
      clock += 2
      const back = { id, state: 0, attempts: 1, error: LEASE_RAN_OUT, leaseExpiresAt: null }
      expect(await store.get(id)).toMatchObject(back)
      expect(await store.countByState()).toEqual({ 0: 2, 1: 0, 2: 0, 3: 0 })
      expect((await store.recent({ state: 1, limit: 10 })).length).toBe(0)
      expect((await store.recent({ state: 0, limit: 10 })).map((t) => t.id)).toEqual([other, id])
      const listed = []
      for await (const task of store.list()) listed.push(task)
      expect(listed[0]).toMatchObject(back)
      // Put back once, however many reads saw it.
      expect(expiries).toBe(1)
      expect(await store.get(id)).toMatchObject({ attempts: 1 })
      // The claim that ran out can no longer renew or finish it.
      expect(await statusOf(store.renew(id, claim.leaseToken))).toBe(409)
      expect(await statusOf(store.finish(id))).toBe(409)
      expect((await store.claim()).claim?.task).toMatchObject({ id, attempts: 1 })
    })

    test('a lease that runs out on the last attempt reads as failed for good at once', async () => {
      const id = await store.create()
      await store.claim()
      clock += 10_001
      await store.claim()
      clock += 10_001
      expect(await store.recent({ state: 3, limit: 10 })).toMatchObject([{ id, state: 3, attempts: 2, error: LEASE_RAN_OUT }])
      expect(await store.countByState()).toEqual({ 0: 0, 1: 0, 2: 0, 3: 1 })
      expect(await store.retry(id)).toMatchObject({ state: 0, attempts: 0 })
      expect(expiries).toBe(2)
    })

    test('renewing a lease keeps the task from being handed out again', async () => {
      const id = await store.create()
      const claim = (await store.claim()).claim!
      clock += 8_000
      expect((await store.renew(id, claim.leaseToken)).leaseExpiresAt).toBe(clock + 10_000)
      clock += 8_000
      expect((await store.claim()).claim).toBeUndefined()
      expect(await statusOf(store.renew(id, 'not-the-token'))).toBe(409)
    })

    test('failures count attempts: back to not started, then failed for good at maxAttempts', async () => {
      const id = await store.create()
      expect(await statusOf(store.fail(id, 'not claimed'))).toBe(409)
      await store.claim()
      expect(await store.fail(id, 'cannot decode')).toMatchObject({ state: 0, attempts: 1, error: 'cannot decode' })
      await store.claim()
      expect(await store.fail(id, 'cannot decode again')).toMatchObject({ state: 3, attempts: 2, error: 'cannot decode again' })
      expect((await store.claim()).claim).toBeUndefined()
      expect(await statusOf(store.fail(id, 'again'))).toBe(409)
    })

    test('a lease that runs out maxAttempts times fails the task for good', async () => {
      const id = await store.create()
      await store.claim()
      clock += 10_001
      await store.claim()
      clock += 10_001
      const result = await store.claim()
      expect(result.claim).toBeUndefined()
      expect(await store.get(id)).toMatchObject({ state: 3, attempts: 2 })
    })

    test('release gives a claim back at once, without counting an attempt; a stale token cannot release', async () => {
      const id = await store.create()
      const claim = (await store.claim()).claim!
      expect(await statusOf(store.release(id, 'not-the-token'))).toBe(409)
      expect(await store.release(id, claim.leaseToken)).toMatchObject({ state: 0, attempts: 0, leaseExpiresAt: null })
      expect((await store.claim()).claim?.task.id).toBe(id)
      expect(await statusOf(store.release(99))).toBe(404)
    })

    test('a task keeps the request id and the trace context of the upload that made it', async () => {
      const id = await store.create({ ready: false, requestId: 'upload-42' })
      await store.activate(id)
      expect((await store.claim()).claim?.task.requestId).toBe('upload-42')
      expect((await store.get(await store.create()))?.requestId).toBeNull()
      const traced = await store.create({ traceParent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })
      expect((await store.get(traced))?.traceParent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
      expect((await store.get(await store.create()))?.traceParent).toBeNull()
    })

    test('a task keeps the hash of its key through its life, and one made without a key has none', async () => {
      const hash = 'ab'.repeat(32)
      const id = await store.create({ ready: false, keyHash: hash })
      await store.activate(id)
      const claim = (await store.claim()).claim!
      expect(claim.task.keyHash).toBe(hash)
      await store.finish(id, claim.leaseToken)
      expect((await store.get(id))?.keyHash).toBe(hash)
      expect((await store.getMany([id]))[0]?.keyHash).toBe(hash)
      expect((await store.get(await store.create()))?.keyHash).toBeNull()
    })

    test('retry puts a failed task back with attempts cleared; other states are a conflict', async () => {
      const id = await store.create()
      expect(await statusOf(store.retry(id))).toBe(409)
      for (let i = 0; i < 2; i++) {
        await store.claim()
        await store.fail(id, 'boom')
      }
      expect(await store.retry(id)).toMatchObject({ state: 0, attempts: 0, error: null })
      expect((await store.claim()).claim?.task.id).toBe(id)
    })

    test('setState sets 0, 1 or 2 on an existing task only', async () => {
      const id = await store.create()
      expect((await store.setState(id, 2)).state).toBe(2)
      expect((await store.setState(id, 1)).leaseExpiresAt).toBe(clock + 10_000)
      expect((await store.setState(id, 0)).state).toBe(0)
      expect(await statusOf(store.setState(42, 0))).toBe(404)
    })

    test('list and countByState see every task', async () => {
      for (let i = 0; i < 3; i++) await store.create()
      await store.claim()
      const ids: number[] = []
      for await (const task of store.list()) ids.push(task.id)
      expect(ids).toEqual([0, 1, 2])
      expect(await store.countByState()).toEqual({ 0: 2, 1: 1, 2: 0, 3: 0 })
    })

    /** A finished task (0 attempts) and a failed one, at the current clock. */
    async function finishedAndFailed(): Promise<[number, number]> {
      const done = await store.create()
      const failed = await store.create()
      await store.claim()
      await store.finish(done)
      for (let i = 0; i < 2; i++) {
        await store.claim()
        await store.fail(failed, 'boom')
      }
      return [done, failed]
    }

    test('markForRemoval takes finished and failed tasks that ended by the cutoff, in bounded batches; never pending ones', async () => {
      const [done, failed] = await finishedAndFailed()
      clock += 60_000
      const late = await store.create()
      await store.claim()
      await store.finish(late)
      const waiting = await store.create()
      const working = await store.create()
      await store.claim()
      await store.claim()
      await store.release(waiting)
      const cutoff = clock - 30_000
      expect(await store.markForRemoval({ endedBefore: cutoff, heldBefore: 0, limit: 1 })).toEqual([done])
      expect(await store.markForRemoval({ endedBefore: cutoff, heldBefore: 0, limit: 10 })).toEqual([failed])
      expect(await store.markForRemoval({ endedBefore: cutoff, heldBefore: 0, limit: 10 })).toEqual([])
      // Retention off: nothing ended is taken, however old.
      expect(await store.markForRemoval({ heldBefore: 0, limit: 10 })).toEqual([])
      // Marked: no read sees them, no change reaches them.
      for (const id of [done, failed]) {
        expect(await store.get(id)).toBeUndefined()
        expect(await statusOf(store.retry(id))).toBe(404)
        expect(await statusOf(store.setState(id, 0))).toBe(404)
      }
      expect((await store.recent({ limit: 10 })).map((t) => t.id)).toEqual([working, waiting, late])
      expect(await store.countByState()).toEqual({ 0: 1, 1: 1, 2: 1, 3: 0 })
      expect(await store.removeMarked([done, failed, waiting])).toBe(2)
      expect((await store.get(waiting))?.state).toBe(0)
      expect((await store.get(working))?.state).toBe(1)
      // Ids are never handed out again, also after the store is opened again.
      await store.close()
      store = env.open(options())
      expect(await store.get(done)).toBeUndefined()
      expect(await store.create()).toBe(working + 1)
    })

    test('held tasks of uploads that never completed, and dropped ones, are taken for removal with their images', async () => {
      const stale = await store.create({ ready: false })
      clock += 10_000
      const dropped = await store.create({ ready: false })
      const fresh = await store.create({ ready: false })
      await store.drop(dropped)
      expect(await store.markForRemoval({ heldBefore: clock - 5_000, limit: 10 })).toEqual([stale, dropped])
      await store.activate(fresh)
      expect(await store.removeMarked([stale, dropped])).toBe(2)
      expect(await statusOf(store.activate(stale))).toBe(404)
      expect((await store.get(fresh))?.state).toBe(0)
    })

    test('a removal that did not complete is taken again once its mark ran out, and not before', async () => {
      const [done] = await finishedAndFailed()
      expect(await store.markForRemoval({ endedBefore: clock, heldBefore: 0, limit: 1 })).toEqual([done])
      // A second sweeper meanwhile: it must not take the same task.
      clock += REMOVAL_LEASE_MS - 1
      expect(await store.markForRemoval({ endedBefore: clock - REMOVAL_LEASE_MS, heldBefore: 0, limit: 10 })).toEqual([])
      clock += 2
      expect(await store.markForRemoval({ endedBefore: clock - REMOVAL_LEASE_MS - 10, heldBefore: 0, limit: 10 })).toEqual([done])
      expect(await store.removeMarked([done])).toBe(1)
    })

    test('markOneForRemoval: finished and failed tasks only, unknown ids 404, a pending task stays exactly as it was', async () => {
      const [done, failed] = await finishedAndFailed()
      const waiting = await store.create()
      const before = await store.get(waiting)
      expect(await statusOf(store.markOneForRemoval(waiting))).toBe(409)
      expect(await store.get(waiting)).toEqual(before)
      const working = await store.create()
      await store.claim()
      await store.claim()
      expect(await statusOf(store.markOneForRemoval(working))).toBe(409)
      expect((await store.get(working))?.state).toBe(1)
      expect(await statusOf(store.markOneForRemoval(999))).toBe(404)
      await store.markOneForRemoval(done)
      await store.markOneForRemoval(failed)
      // Marked already (its images not removed yet): marked again, so that the removal is tried again.
      await store.markOneForRemoval(done)
      expect(await store.get(done)).toBeUndefined()
      expect(await store.removeMarked([done, failed])).toBe(2)
      expect(await statusOf(store.markOneForRemoval(done))).toBe(404)
    })

    test('countByState stays equal to a count of the listed tasks through every kind of change', async () => {
      const check = async () => {
        const counted: Record<TaskState, number> = { 0: 0, 1: 0, 2: 0, 3: 0 }
        for await (const task of store.list()) counted[task.state]++
        expect(await store.countByState()).toEqual(counted)
      }
      const ids = []
      for (let i = 0; i < 6; i++) ids.push(await store.create())
      const held = await store.create({ ready: false })
      await check()
      for (let i = 0; i < 5; i++) await store.claim()
      await check()
      await store.finish(ids[0]!)
      await store.fail(ids[1]!, 'x')
      await store.release(ids[2]!)
      await store.renew(ids[3]!, (await store.claim()).claim?.leaseToken ?? 'none').catch(() => {})
      await check()
      await store.setState(ids[4]!, 2)
      await store.activate(held)
      clock += 10_001
      await check()
      await store.markOneForRemoval(ids[0]!)
      await check()
      await store.removeMarked([ids[0]!])
      await check()
    })

    test('200 concurrent claims over 100 tasks hand each task out exactly once, oldest first', async () => {
      for (let i = 0; i < 100; i++) await store.create()
      const results = await Promise.all(Array.from({ length: 200 }, () => store.claim()))
      const ids = results.flatMap((r) => (r.claim ? [r.claim.task.id] : []))
      expect(ids.length).toBe(100)
      expect(new Set(ids).size).toBe(100)
      expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
    })

    test('tasks, states and the id counter survive closing and opening again', async () => {
      await store.create()
      await store.create()
      await store.claim()
      await store.finish(0)
      await store.close()
      store = env.open(options())
      expect(await store.get(0)).toMatchObject({ state: 2 })
      expect(await store.get(1)).toMatchObject({ state: 0 })
      expect(await store.create()).toBe(2)
    })
  })
}
