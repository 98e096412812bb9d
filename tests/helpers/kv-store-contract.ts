// The contract every KvStore must keep; each implementation's test file runs it.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import type { KvStore } from '../../src/roles/kv/kv-store.ts'

/**
 * `open` gives a store over a fresh place, and again a new store over the same place (for durability). `pass(ms)` lets
 * that much time pass for the store: an embedded store's clock is moved; a server's own clock can only be waited for.
 */
export function kvStoreContract(name: string, setup: () => { open(): KvStore; cleanup(): void; pass(ms: number): Promise<void> }) {
  describe(`KvStore contract: ${name}`, () => {
    let env: ReturnType<typeof setup>
    let store: KvStore
    beforeEach(() => {
      env = setup()
      store = env.open()
    })
    afterEach(async () => {
      await store.close().catch(() => {})
      env.cleanup()
    })

    test('a value set can be read back, and an unknown key reads as undefined', async () => {
      await store.set('masterAddress', 'localhost:3003')
      expect(await store.get('masterAddress')).toBe('localhost:3003')
      expect(await store.get('nothing')).toBeUndefined()
    })

    test('setting a key again replaces its value', async () => {
      await store.set('k', 'first')
      await store.set('k', 'second')
      expect(await store.get('k')).toBe('second')
      expect(await store.list()).toEqual([['k', 'second']])
    })

    test('remove reports whether the key existed and forgets it', async () => {
      await store.set('k', 'v')
      expect(await store.remove('k')).toBe(true)
      expect(await store.remove('k')).toBe(false)
      expect(await store.get('k')).toBeUndefined()
    })

    test('list gives every pair ordered by key', async () => {
      await store.set('b', '2')
      await store.set('a', '1')
      await store.set('c', '3')
      expect(await store.list()).toEqual([
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
      ])
    })

    test('keys and values keep spaces, separators and non-ASCII text exactly', async () => {
      const key = 'acc key&x=1 : é'
      const value = 'http://h:1/p?q=a&b c\tü 漢'
      await store.set(key, value)
      expect(await store.get(key)).toBe(value)
    })

    test('pairs survive closing and opening the store again', async () => {
      await store.set('kept', 'yes')
      await store.set('gone', 'no')
      await store.remove('gone')
      await store.close()
      store = env.open()
      expect(await store.get('kept')).toBe('yes')
      expect(await store.get('gone')).toBeUndefined()
    })

    test('a pair set with a time to live is gone once it ran out; setting it again keeps it alive', async () => {
      await store.set('masterAddress/a:1', 'a:1', { ttlSeconds: 0.3 })
      await store.set('masterAddress/b:1', 'b:1', { ttlSeconds: 0.3 })
      await store.set('forever', 'yes')
      expect(await store.get('masterAddress/a:1')).toBe('a:1')
      await env.pass(200)
      await store.set('masterAddress/b:1', 'b:1', { ttlSeconds: 0.3 })
      await env.pass(200)
      expect(await store.get('masterAddress/a:1')).toBeUndefined()
      expect(await store.get('masterAddress/b:1')).toBe('b:1')
      expect(await store.list()).toEqual([
        ['forever', 'yes'],
        ['masterAddress/b:1', 'b:1'],
      ])
      // A plain set makes a pair permanent again.
      await store.set('masterAddress/b:1', 'b:1')
      await env.pass(350)
      expect(await store.get('masterAddress/b:1')).toBe('b:1')
    })

    test('list with a prefix gives only the keys that start with it', async () => {
      await store.set('masterAddress', 'm:0')
      await store.set('masterAddress/m:1', 'm:1')
      await store.set('masterAddress/m:2', 'm:2')
      await store.set('storageAddress/s:1', 's:1')
      expect(await store.list('masterAddress/')).toEqual([
        ['masterAddress/m:1', 'm:1'],
        ['masterAddress/m:2', 'm:2'],
      ])
      expect(await store.list('nothing/')).toEqual([])
    })

    test('a healthy store says so', async () => {
      expect(await store.healthy()).toBe(true)
    })
  })
}
