// The master's memory of unfinished task states: trusted a moment, a finished state never kept.
import { describe, expect, test } from 'bun:test'
import { createTaskStates } from '../../src/roles/master/task-states.ts'

describe('task states', () => {
  test('an unfinished state is trusted for trustMs, then asked for again', () => {
    let clock = 0
    const states = createTaskStates({ trustMs: 250, now: () => clock })
    states.set(1, 0)
    states.set(2, 3)
    clock = 249
    expect([states.get(1)?.state, states.get(2)?.state]).toEqual([0, 3])
    clock = 250
    expect([states.get(1), states.get(2)]).toEqual([undefined, undefined])
  })

  test('a finished state is never kept, and forget drops what was kept', () => {
    const states = createTaskStates({ now: () => 0 })
    states.set(1, 0)
    states.set(1, 2)
    expect(states.get(1)).toBeUndefined()
    states.set(2, 1)
    states.forget(2)
    expect(states.get(2)).toBeUndefined()
  })

  test('past its capacity the oldest sighting goes first', () => {
    const states = createTaskStates({ capacity: 2, now: () => 0 })
    states.set(1, 0)
    states.set(2, 0)
    states.set(1, 1)
    states.set(3, 0)
    expect([states.get(1)?.state, states.get(2), states.get(3)?.state]).toEqual([1, undefined, 0])
  })

  test('the key hash seen with a state is kept with it, so that a key is checked against it', () => {
    const states = createTaskStates({ now: () => 0 })
    states.set(4, 1, 'ab'.repeat(32))
    states.set(5, 0)
    expect(states.get(4)).toMatchObject({ state: 1, keyHash: 'ab'.repeat(32) })
    expect(states.get(5)?.keyHash).toBeUndefined()
  })
})
