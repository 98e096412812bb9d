// The Redis kv store against the KvStore contract, plus what only Redis has: glob keys, a namespace, outages, kill -9.

import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { RedisClient } from 'bun'
import type { KvStore } from '../../src/roles/kv/kv-store.ts'
import { escapeGlob, openRedisKvStore, redactRedisUrl } from '../../src/roles/kv/redis-kv-store.ts'
import { DependencyUnavailable } from '../../src/shared/errors.ts'
import { kvStoreContract } from '../helpers/kv-store-contract.ts'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts'

// One server for the file; each contract case gets a namespace of its own instead of a flush
// (the contract's cleanup is synchronous), and `reopen` is a new client over the same namespace.
let server: RedisServer
let cases = 0
beforeAll(async () => {
  server = await startRedisServer()
})
afterAll(async () => {
  await server.stop()
})

kvStoreContract('Redis', () => {
  const namespace = `pixmill:kv:contract-${++cases}:`
  // Redis expires pairs on its own clock: the contract's time passes for real.
  return { open: () => openRedisKvStore(server.url, { namespace }), cleanup: () => {}, pass: (ms) => Bun.sleep(ms) }
})

/** What a failing call took, and what it threw. */
async function failure(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now()
  try {
    await call()
  } catch (error) {
    return { error, ms: performance.now() - started }
  }
  throw new Error('the call did not fail')
}

describe('Redis kv store: keys and namespace', () => {
  let store: KvStore
  let raw: RedisClient
  beforeAll(async () => {
    raw = new RedisClient(server.url)
    await raw.connect()
  })
  afterAll(() => raw.close())
  afterEach(async () => {
    await store?.close()
  })

  test('glob characters in keys and prefixes match only themselves', async () => {
    store = openRedisKvStore(server.url, { namespace: 'pixmill:kv:glob:' })
    const keys = ['a*b', 'a?c', 'a[x]', 'a\\d', 'aXb', 'a[b', 'ab', 'a]']
    for (const key of keys) await store.set(key, `v:${key}`)
    for (const key of keys) expect(await store.get(key)).toBe(`v:${key}`)
    expect((await store.list('a*')).map(([k]) => k)).toEqual(['a*b'])
    expect((await store.list('a?')).map(([k]) => k)).toEqual(['a?c'])
    expect((await store.list('a[')).map(([k]) => k)).toEqual(['a[b', 'a[x]'])
    expect((await store.list('a\\')).map(([k]) => k)).toEqual(['a\\d'])
    expect((await store.list('a]')).map(([k]) => k)).toEqual(['a]'])
    expect((await store.list('*')).map(([k]) => k)).toEqual([])
    expect((await store.list()).map(([k]) => k)).toEqual([...keys].sort())
    expect(escapeGlob('a*?[]\\b')).toBe('a\\*\\?\\[\\]\\\\b')
  })

  test('pairs live under the namespace, and other data in the same Redis is neither seen nor touched', async () => {
    await raw.set('other:app', 'theirs')
    await raw.set('masterAddress', 'not ours')
    store = openRedisKvStore(server.url, { namespace: 'pixmill:kv:ns:' })
    const neighbour = openRedisKvStore(server.url, { namespace: 'pixmill:kv:ns-other:' })
    await store.set('masterAddress', 'm:1')
    await neighbour.set('masterAddress', 'n:1')
    expect(await raw.get('pixmill:kv:ns:masterAddress')).toBe('m:1')
    expect(await store.get('masterAddress')).toBe('m:1')
    expect(await store.list()).toEqual([['masterAddress', 'm:1']])
    expect(await store.remove('masterAddress')).toBe(true)
    expect(await raw.get('masterAddress')).toBe('not ours')
    expect(await raw.get('other:app')).toBe('theirs')
    expect(await neighbour.get('masterAddress')).toBe('n:1')
    await neighbour.close()
  })

  test('a ttl is kept in milliseconds, and a plain set clears it', async () => {
    store = openRedisKvStore(server.url, { namespace: 'pixmill:kv:ttl:' })
    await store.set('k', 'v', { ttlSeconds: 2.5 })
    const pttl = Number(await raw.send('PTTL', ['pixmill:kv:ttl:k']))
    expect(pttl).toBeGreaterThan(2000)
    expect(pttl).toBeLessThanOrEqual(2500)
    await store.set('k', 'v')
    expect(Number(await raw.send('PTTL', ['pixmill:kv:ttl:k']))).toBe(-1)
  })

  test('a password in the url is not logged', () => {
    expect(redactRedisUrl('redis://user:secret@h:6379/2')).toBe('redis://user:***@h:6379/2')
  })
})

describe('Redis kv store: outages', () => {
  // A server of its own: these cases kill it.
  let own: RedisServer
  let store: KvStore
  beforeAll(async () => {
    own = await startRedisServer()
  })
  afterAll(async () => {
    await store?.close()
    await own.stop()
  })

  test('Redis down: every method fails fast with DependencyUnavailable and healthy() is false; back: it works again', async () => {
    store = openRedisKvStore(own.url)
    await store.set('kept', 'yes')
    await own.kill9()
    for (const call of [async () => store.get('kept'), () => store.set('k', 'v'), () => store.remove('kept'), () => store.list()]) {
      const { error, ms } = await failure(call)
      expect(error).toBeInstanceOf(DependencyUnavailable)
      expect((error as DependencyUnavailable).status).toBe(503)
      expect(ms).toBeLessThan(1500)
    }
    const started = performance.now()
    expect(await store.healthy()).toBe(false)
    expect(performance.now() - started).toBeLessThan(1500)
    // Long enough that Bun's own reconnection attempts have given up: the store must reconnect itself.
    await Bun.sleep(500)
    await own.restart()
    expect(await store.healthy()).toBe(true)
    expect(await store.get('kept')).toBe('yes')
  })

  test('a hung Redis (stopped, socket open) fails each call within the command timeout', async () => {
    store = openRedisKvStore(own.url, { commandTimeoutMs: 300 })
    await store.set('k', 'v')
    own.pause()
    try {
      const { error, ms } = await failure(async () => store.get('k'))
      expect(error).toBeInstanceOf(DependencyUnavailable)
      expect(ms).toBeLessThan(800)
      expect(await store.healthy()).toBe(false)
    } finally {
      own.resume()
    }
    expect(await store.get('k')).toBe('v')
  })

  test('a store opened while Redis is down serves once Redis is up', async () => {
    await own.kill9()
    store = openRedisKvStore(own.url)
    expect(await store.healthy()).toBe(false)
    await own.restart()
    expect(await store.healthy()).toBe(true)
    await store.set('late', 'fine')
    expect(await store.get('late')).toBe('fine')
  })

  test('acknowledged pairs and their ttl survive kill -9 and a restart of redis-server (appendonly)', async () => {
    store = openRedisKvStore(own.url)
    for (let i = 0; i < 50; i++) await store.set(`pair/${i}`, `value ${i}`)
    await store.remove('pair/7')
    await store.set('short', 'lived', { ttlSeconds: 0.6 })
    await store.set('registration', 'r:1', { ttlSeconds: 60 })
    await own.kill9()
    await own.restart()
    const pairs = await store.list('pair/')
    expect(pairs.length).toBe(49)
    expect(pairs.some(([k]) => k === 'pair/7')).toBe(false)
    expect(await store.get('pair/49')).toBe('value 49')
    expect(await store.get('registration')).toBe('r:1')
    await Bun.sleep(700)
    expect(await store.get('short')).toBeUndefined()
  })
})
