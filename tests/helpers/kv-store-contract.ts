// The contract every KvStore must keep; each implementation's test file runs it.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import type { KvStore } from '../../src/roles/kv/kv-store.ts'

/** `open` gives a store over a fresh place; `reopen` gives a new store over the same place (for durability). */
export function kvStoreContract(name: string, setup: () => { open(): KvStore; cleanup(): void }) {
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
      expect(await store.list()).toEqual([['a', '1'], ['b', '2'], ['c', '3']])
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

    test('a healthy store says so', async () => {
      expect(await store.healthy()).toBe(true)
    })
  })
}
