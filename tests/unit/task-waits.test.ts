// The master's waits: every client waiting on its tasks, one poll of the database behind them all. The polls and the
// waits' timeouts run on a manual clock.
import { afterEach, describe, expect, test } from 'bun:test'
import type { TaskRecord } from '../../src/clients/database-client.ts'
import { createTaskWaits, type TaskWaits } from '../../src/roles/master/task-waits.ts'
import { NotFound, NotOffered } from '../../src/shared/errors.ts'
import { manualClock } from '../helpers/manual-clock.ts'

/** A database of tasks by id, counting how often it is asked and for how many ids. */
function fakeDatabase() {
  const tasks = new Map<number, number>()
  const calls: number[] = []
  const record = (id: number, state: number): TaskRecord => ({ id, state, stateName: String(state), attempts: 0, createdAt: '', updatedAt: '' })
  return {
    tasks,
    calls,
    records: async (ids: readonly number[]) => {
      calls.push(ids.length)
      const found = new Map<number, TaskRecord>()
      for (const id of ids) if (tasks.has(id)) found.set(id, record(id, tasks.get(id)!))
      return found
    },
  }
}

let waits: TaskWaits | undefined
afterEach(() => waits?.close())

describe('task waits', () => {
  test('a task that has ended is answered by the first poll; a waiting one when it ends', async () => {
    const db = fakeDatabase()
    db.tasks.set(1, 2).set(2, 0)
    const clock = manualClock()
    waits = createTaskWaits({ records: db.records, pollMs: 20, clock })
    const first = waits.wait(1, 5000)
    await clock.advance(0)
    expect((await first).state).toBe(2)
    let answered = false
    const later = waits.wait(2, 5000).finally(() => (answered = true))
    await clock.advance(60)
    expect(answered).toBe(false)
    db.tasks.set(2, 3)
    await clock.advance(20)
    expect((await later).state).toBe(3)
  })

  test('200 clients waiting on 200 tasks make one database call per poll, not one each', async () => {
    const db = fakeDatabase()
    for (let id = 0; id < 200; id++) db.tasks.set(id, 0)
    const clock = manualClock()
    waits = createTaskWaits({ records: db.records, pollMs: 50, clock })
    const all = Array.from({ length: 200 }, (_, id) => waits!.wait(id, 5000))
    await clock.advance(300)
    // A poll at 0 ms, then one every 50 ms: seven in 300 ms, each one call for every id.
    expect(db.calls).toEqual(Array(7).fill(200))
    for (let id = 0; id < 200; id++) db.tasks.set(id, 2)
    await clock.advance(50)
    expect((await Promise.all(all)).every((r) => r.state === 2)).toBe(true)
    expect(waits.size()).toBe(0)
  })

  test('after its timeout a wait is answered with the task as it is; an unknown id is NotFound', async () => {
    const db = fakeDatabase()
    db.tasks.set(5, 1)
    const clock = manualClock()
    waits = createTaskWaits({ records: db.records, pollMs: 10, clock })
    let answered = false
    const timed = waits.wait(5, 100).finally(() => (answered = true))
    await clock.advance(99)
    expect(answered).toBe(false)
    await clock.advance(1)
    expect((await timed).state).toBe(1)
    const unknown = waits.wait(9, 1000).catch((e: unknown) => e)
    await clock.advance(10)
    expect(await unknown).toBeInstanceOf(NotFound)
  })

  test('a change through this master answers its waits without waiting for the next poll', async () => {
    const db = fakeDatabase()
    db.tasks.set(3, 1)
    const clock = manualClock()
    waits = createTaskWaits({ records: db.records, pollMs: 60_000, clock })
    const waiting = waits.wait(3, 5000)
    await clock.advance(30)
    db.tasks.set(3, 2)
    waits.changed(3)
    await clock.settle()
    // Answered without the clock moving on to the next poll.
    expect(db.calls).toEqual([1, 1])
    expect((await waiting).state).toBe(2)
  })

  test('a client that goes away leaves no wait behind; a database that cannot tell makes every wait NotOffered', async () => {
    const db = fakeDatabase()
    db.tasks.set(4, 0)
    waits = createTaskWaits({ records: db.records, pollMs: 10 })
    const gone = new AbortController()
    void waits.wait(4, 5000, gone.signal)
    gone.abort()
    expect(waits.size()).toBe(0)
    const original = createTaskWaits({
      records: async () => {
        throw new NotOffered('no records', '/wait')
      },
      pollMs: 10,
    })
    await expect(original.wait(4, 5000)).rejects.toBeInstanceOf(NotOffered)
    original.close()
  })

  test('a waiter that may not see the task (a wrong key) is refused at the first poll as an unknown id is, and never told its state', async () => {
    const db = fakeDatabase()
    db.tasks.set(6, 1)
    const clock = manualClock()
    waits = createTaskWaits({ records: db.records, pollMs: 20, clock })
    const allowed = waits.wait(6, 5000, undefined, () => true)
    const refusing = waits.wait(6, 5000, undefined, () => false).catch((e: unknown) => e)
    const unknowing = waits.wait(77, 5000).catch((e: unknown) => e)
    await clock.advance(0)
    const [refused, unknown] = [await refusing, await unknowing]
    expect(refused).toBeInstanceOf(NotFound)
    expect([(refused as Error).message, (unknown as Error).message]).toEqual(['No task with id 6.', 'No task with id 77.'])
    const timed = waits.wait(6, 100, undefined, () => true)
    await clock.advance(100)
    expect((await timed).state).toBe(1)
    // Whatever answers a wait goes through the same check: here a change through this master, after a first poll that let
    // the waiter in (a check that changes its mind stands for one that a cache might have skipped).
    const slow = createTaskWaits({ records: db.records, pollMs: 60_000, clock })
    let checks = 0
    const late = slow.wait(6, 5000, undefined, () => checks++ === 0)
    await clock.advance(30)
    expect(checks).toBe(1)
    db.tasks.set(6, 2)
    slow.changed(6)
    await expect(late).rejects.toBeInstanceOf(NotFound)
    await clock.advance(20)
    expect((await allowed).state).toBe(2)
    slow.close()
  })
})
