// The parts of private results and the upload limit: task keys, client addresses, the limiter's buckets.
import { describe, expect, test } from 'bun:test'
import { createDatabaseClient } from '../../src/clients/database-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { clientAddress, clientBucket, parseAddress } from '../../src/shared/client-address.ts'
import { NotOffered } from '../../src/shared/errors.ts'
import { createRateLimiter } from '../../src/shared/rate-limit.ts'
import { hashTaskKey, keyMatches, newTaskKey } from '../../src/shared/task-key.ts'

describe('task keys', () => {
  test('a key is 192 random bits in 32 URL-safe characters, new every time', () => {
    const keys = Array.from({ length: 200 }, newTaskKey)
    expect(new Set(keys).size).toBe(200)
    for (const key of keys) {
      expect(key).toMatch(/^[A-Za-z0-9_-]{32}$/)
      expect(Buffer.from(key, 'base64url').length).toBe(24)
    }
  })

  test('only the key itself matches its hash: not a truncated, extended, re-cased or empty one, nor another task’s', () => {
    const key = newTaskKey()
    const hash = hashTaskKey(key)
    expect(hash).toMatch(/^[0-9a-f]{64}$/)
    expect(keyMatches(key, hash)).toBe(true)
    for (const wrong of [key.slice(0, -1), key.slice(0, 16), `${key}A`, key.toUpperCase(), '', newTaskKey(), hash]) {
      expect(keyMatches(wrong, hash)).toBe(false)
    }
  })

  test('a task without a hash (or with a damaged one) matches no key at all', () => {
    for (const hash of [null, undefined, '', 'zz'.repeat(32), hashTaskKey('x').slice(2)]) expect(keyMatches('x', hash)).toBe(false)
  })

  test('a database of the original protocol cannot keep a key: the reservation fails before any task is made there', async () => {
    const asked: string[] = []
    const database = createDatabaseClient(fixedPeer('databaseAddress', 'original.local'), async (request) => {
      asked.push(new URL(request.url).pathname)
      return new Response('404 page not found\n', { status: 404 })
    })
    await expect(database.reserveTask({ keyHash: hashTaskKey('k') })).rejects.toBeInstanceOf(NotOffered)
    expect(asked).toEqual(['/reserveTask'])
  })
})

describe('client addresses', () => {
  const request = (forwarded?: string) => new Request('http://localhost/new', { headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } })

  test('addresses are read as a server writes them, ports and IPv4-mapped forms included; anything else is no address', () => {
    expect(parseAddress(' 203.0.113.7 ')).toBe('203.0.113.7')
    expect(parseAddress('203.0.113.7:5123')).toBe('203.0.113.7')
    expect(parseAddress('[2001:DB8::1]:443')).toBe('2001:db8::1')
    expect(parseAddress('::ffff:198.51.100.4')).toBe('198.51.100.4')
    for (const junk of ['unknown', '', '1.2.3', '999.1.1.1', '<script>', 'a'.repeat(300), '1.2.3.4, 5.6.7.8', '_hidden'])
      expect(parseAddress(junk)).toBeUndefined()
  })

  test('without trusted proxies X-Forwarded-For is ignored: the socket counts', () => {
    expect(clientAddress(request('198.51.100.1'), '127.0.0.1', { trustProxy: 0 })).toBe('127.0.0.1')
    expect(clientAddress(request(), undefined, { trustProxy: 0 })).toBeUndefined()
  })

  test('behind N proxies the N-th entry from the right counts; entries the client wrote further left never do', () => {
    const forged = request('6.6.6.6, 203.0.113.9, 10.0.0.2')
    expect(clientAddress(forged, '10.0.0.1', { trustProxy: 1 })).toBe('10.0.0.2')
    expect(clientAddress(forged, '10.0.0.1', { trustProxy: 2 })).toBe('203.0.113.9')
    // Fewer entries than proxies: the leftmost.
    expect(clientAddress(request('203.0.113.9'), '10.0.0.1', { trustProxy: 3 })).toBe('203.0.113.9')
    expect(clientAddress(request(), '10.0.0.1', { trustProxy: 1 })).toBe('10.0.0.1')
  })

  test('a malformed X-Forwarded-For falls back to the socket, whatever is trusted', () => {
    for (const header of ['garbage', '203.0.113.9, not-an-address', ',,,', 'unknown', '1.2.3.4 5.6.7.8']) {
      expect(clientAddress(request(header), '192.0.2.50', { trustProxy: 1 })).toBe('192.0.2.50')
      expect(clientAddress(request(header), '192.0.2.50', { trustProxy: 0, fromPeer: true })).toBe('192.0.2.50')
    }
  })

  test('a peer with the token names its client in the last entry, even where no proxy is trusted', () => {
    expect(clientAddress(request('6.6.6.6, 203.0.113.9'), '127.0.0.1', { trustProxy: 0, fromPeer: true })).toBe('203.0.113.9')
  })

  test('an IPv6 client is limited by its /64; an IPv4 one by its address; no address is one bucket', () => {
    expect(clientBucket('2001:db8:aa:bb:1:2:3:4')).toBe('2001:db8:aa:bb::/64')
    expect(clientBucket('2001:db8:aa:bb::9')).toBe('2001:db8:aa:bb::/64')
    expect(clientBucket('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(clientBucket('::1')).toBe('0:0:0:0::/64')
    expect(clientBucket('203.0.113.9')).toBe('203.0.113.9')
    expect(clientBucket(undefined)).toBe('unknown')
  })
})

describe('upload limiter', () => {
  test('a client gets its allowance at once, then one upload per 60/N s; Retry-After says how long', () => {
    let clock = 0
    const limiter = createRateLimiter({ perMinute: 3, now: () => clock })
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([0, 0, 0])
    expect(limiter.take('a')).toBe(20)
    clock = 19_000
    expect(limiter.take('a')).toBe(1)
    clock = 20_000
    expect(limiter.take('a')).toBe(0)
    expect(limiter.take('a')).toBe(20)
  })

  test('one flooding client does not limit another', () => {
    const limiter = createRateLimiter({ perMinute: 2, now: () => 0 })
    for (let i = 0; i < 50; i++) limiter.take('flood')
    expect(limiter.take('flood')).toBeGreaterThan(0)
    expect([limiter.take('calm'), limiter.take('calm')]).toEqual([0, 0])
  })

  test('memory stays bounded: idle buckets go, and past the cap the least recently seen client is forgotten', () => {
    let clock = 0
    const limiter = createRateLimiter({ perMinute: 5, maxClients: 1000, now: () => clock })
    for (let i = 0; i < 5000; i++) limiter.take(`10.0.${i >> 8}.${i & 255}`)
    expect(limiter.size()).toBe(1000)
    // A minute later every bucket is full again; each call drops a few, so a steady trickle empties the table.
    clock = 61_000
    for (let i = 0; i < 400; i++) limiter.take('192.0.2.1')
    expect(limiter.size()).toBe(1)
  })
})
