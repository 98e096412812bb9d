// Two kv role processes on one Redis (PIXMILL_KV_URL): shared pairs, shared expiry, kill -9 of one, Redis down and back.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { freePort, httpText, type RoleProcess, spawnRole, waitHealthy } from '../helpers/processes.ts'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

// Each instance has a data folder of its own, so nothing can be shared through bun:sqlite by accident.
const dirA = tempDir('pixmill-e2e-kv-a-')
const dirB = tempDir('pixmill-e2e-kv-b-')
const addressA = `127.0.0.1:${freePort()}`
const addressB = `127.0.0.1:${freePort()}`
let redis: RedisServer
let kvA: RoleProcess
let kvB: RoleProcess

const startA = () => spawnRole('kv', [addressA], { dataDir: dirA.path, healthAt: addressA, env: { PIXMILL_KV_URL: redis.url } })
const startB = () => spawnRole('kv', [addressB], { dataDir: dirB.path, healthAt: addressB, env: { PIXMILL_KV_URL: redis.url } })
const post = { method: 'POST' }

beforeAll(async () => {
  redis = await startRedisServer()
  ;[kvA, kvB] = await Promise.all([startA(), startB()])
})
afterAll(async () => {
  await Promise.allSettled([kvA?.kill9(), kvB?.kill9()])
  await redis?.stop()
  dirA.remove()
  dirB.remove()
})

describe('e2e: two kv instances on one Redis', () => {
  test('each instance logs that it keeps its pairs in Redis', () => {
    expect(readFileSync(kvA.logFile, 'utf8')).toContain('"store":"redis"')
  })

  test('a pair set through one instance is read, listed and removed through the other', async () => {
    expect((await httpText(addressA, '/set?key=masterAddress&value=m%3A1', post)).text).toBe('success')
    expect(await httpText(addressB, '/get?key=masterAddress')).toMatchObject({ status: 200, text: 'm:1' })
    expect((await httpText(addressB, '/list?prefix=master')).text).toBe('masterAddress : m:1\n')
    expect((await httpText(addressB, '/remove?key=masterAddress', { method: 'DELETE' })).text).toBe('success')
    expect((await httpText(addressA, '/get?key=masterAddress')).status).toBe(404)
  })

  test('a pair with a ttl expires for both instances', async () => {
    expect((await httpText(addressA, '/set?key=workerAddress%2Fw1&value=w1&ttl=1', post)).text).toBe('success')
    expect((await httpText(addressB, '/get?key=workerAddress%2Fw1')).text).toBe('w1')
    // Redis expires it on its own clock.
    await waitFor('the pair to expire', async () => (await httpText(addressA, '/get?key=workerAddress%2Fw1')).status === 404, 5000)
    expect((await httpText(addressB, '/get?key=workerAddress%2Fw1')).status).toBe(404)
    expect((await httpText(addressB, '/list?prefix=workerAddress')).text).toBe('')
  })

  test('kill -9 of one instance loses nothing: the other serves every pair, and the restarted one too', async () => {
    for (let i = 0; i < 20; i++) expect((await httpText(addressA, `/set?key=pair%2F${i}&value=${i}`, post)).text).toBe('success')
    await kvA.kill9()
    const listed = (await httpText(addressB, '/list?prefix=pair%2F')).text.trim().split('\n')
    expect(listed.length).toBe(20)
    expect(await httpText(addressB, '/get?key=pair%2F19')).toMatchObject({ status: 200, text: '19' })
    kvA = await startA()
    expect(await httpText(addressA, '/get?key=pair%2F0')).toMatchObject({ status: 200, text: '0' })
  })

  test('Redis down: both answer 503 fast on /health and on the pairs; Redis back: both serve again, pairs intact', async () => {
    await redis.kill9()
    for (const address of [addressA, addressB]) {
      const started = performance.now()
      expect((await httpText(address, '/health')).status).toBe(503)
      const get = await httpText(address, '/get?key=pair%2F0')
      expect(get.status).toBe(503)
      expect(get.text).toStartWith('Error:')
      expect((await httpText(address, '/set?key=x&value=y', post)).status).toBe(503)
      expect(performance.now() - started).toBeLessThan(3000)
    }
    await redis.restart()
    await Promise.all([waitHealthy(addressA, 5000), waitHealthy(addressB, 5000)])
    expect(await httpText(addressB, '/get?key=pair%2F5')).toMatchObject({ status: 200, text: '5' })
    expect((await httpText(addressA, '/set?key=after&value=outage', post)).text).toBe('success')
    expect((await httpText(addressB, '/get?key=after')).text).toBe('outage')
  })
})
