// Which database instance exports the figures of a shared store: the lowest live address in kv, read at most every few seconds.
import { describe, expect, test } from 'bun:test'
import type { KvClient } from '../../src/clients/kv-client.ts'
import { lowestAddressReports } from '../../src/roles/database/shared-figures.ts'

function registry(addresses: string[]) {
  const state = { addresses, down: false, reads: 0 }
  const kv = {
    address: 'kv.local',
    async list(prefix: string) {
      state.reads++
      if (state.down) throw new Error('kv at kv.local is unreachable')
      // An original kv answers every pair; the caller filters.
      return [...state.addresses.map((a) => [`${prefix}${a}`, a] as const), ['masterAddress', '0.0.0.0:1'] as const]
    },
  } as unknown as KvClient
  return { kv, state }
}

describe('lowestAddressReports', () => {
  test('the lowest live address reports, the others do not; concurrent calls share one read of kv', async () => {
    const { kv, state } = registry(['10.0.0.2:3001', '10.0.0.1:3001'])
    let now = 0
    const low = lowestAddressReports(kv, 'databaseAddress', () => '10.0.0.1:3001', { now: () => now })
    const high = lowestAddressReports(kv, 'databaseAddress', () => '10.0.0.2:3001', { now: () => now })
    expect(await Promise.all([low(), low(), high()])).toEqual([true, true, false])
    expect(state.reads).toBe(2)
    // The reporter left the registry: the next one takes over once its cached list is old.
    state.addresses = ['10.0.0.2:3001']
    expect(await high()).toBe(false)
    now += 5000
    expect(await high()).toBe(true)
  })

  test('kv down keeps the last list; an instance not registered yet does not report while others are; with no list it reports', async () => {
    const { kv, state } = registry(['a:1', 'b:1'])
    let now = 0
    const b = lowestAddressReports(kv, 'databaseAddress', () => 'b:1', { now: () => now })
    expect(await b()).toBe(false)
    state.down = true
    now += 10_000
    expect(await b()).toBe(false)
    const newcomer = lowestAddressReports(kv, 'databaseAddress', () => 'a:0', { now: () => now })
    // Never read a list (kv down from the start): alone as far as it knows.
    expect(await newcomer()).toBe(true)
    state.down = false
    const unregistered = lowestAddressReports(kv, 'databaseAddress', () => '0:1', { now: () => now })
    expect(await unregistered()).toBe(false)
    state.addresses = []
    const alone = lowestAddressReports(kv, 'databaseAddress', () => '0:1', { now: () => now })
    expect(await alone()).toBe(true)
  })
})
