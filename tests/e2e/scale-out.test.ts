// Issue 7's end to end: two kv, two masters, two database roles, two storage roles and three workers on one Redis,
// one PostgreSQL and one S3-compatible server; 300 uploads; a master and a worker killed midway; every task
// finished exactly once and every image correct.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import sharp from 'sharp'
import { encodePng } from '../helpers/png.ts'
import { type PostgresServer, startPostgresServer } from '../helpers/postgres-server.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts'
import { type S3Server, startS3Server } from '../helpers/s3-server.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

setDefaultTimeout(120_000)
const UPLOADS = 300
const dir = tempDir('pixmill-e2e-scale-')
const at = () => `127.0.0.1:${freePort()}`
// Picked just before each role starts: ports picked earlier could be taken meanwhile by Redis, PostgreSQL or s3rver.
const kvs: string[] = []
const masters: string[] = []
let redis: RedisServer
let postgres: PostgresServer
let s3: S3Server
const roles = new Map<string, RoleProcess>()

async function start(name: string, role: string, args: string[], env: Record<string, string>, healthAt?: string) {
  const dataDir = `${dir.path}/${name}`
  mkdirSync(dataDir, { recursive: true })
  roles.set(name, await spawnRole(role, args, { dataDir, env, healthAt, timeoutMs: 60_000 }))
}

beforeAll(async () => {
  ;[redis, postgres, s3] = await Promise.all([startRedisServer(), startPostgresServer(), startS3Server()])
  const env = {
    PIXMILL_KV_URL: redis.url,
    PIXMILL_DATABASE_URL: postgres.url,
    PIXMILL_STORAGE_URL: s3.url,
    ...s3.env,
    PIXMILL_LEASE_SECONDS: '3',
    PIXMILL_REGISTRATION_TTL_SECONDS: '3',
  }
  kvs.push(at(), at())
  await Promise.all(kvs.map((address, i) => start(`kv${i}`, 'kv', [address], env, address)))
  // Every other role talks to one of the two kv instances; both serve the same pairs from Redis.
  const kvOf = (i: number) => kvs[i % 2]!
  await Promise.all(
    [0, 1].map((i) => {
      const a = at()
      return start(`database${i}`, 'database', [a, kvOf(i)], env, a)
    }),
  )
  await Promise.all(
    [0, 1].map((i) => {
      const a = at()
      return start(`storage${i}`, 'storage', [a, kvOf(i)], env, a)
    }),
  )
  masters.push(at(), at())
  await Promise.all(masters.map((address, i) => start(`master${i}`, 'master', [address, kvOf(i)], env, address)))
  await Promise.all([0, 1, 2].map((i) => start(`worker${i}`, 'worker', [kvOf(i), '1'], env)))
}, 120_000)

afterAll(async () => {
  await Promise.allSettled([...roles.values()].map((r) => r.kill9()))
  await Promise.allSettled([redis?.stop(), postgres?.destroy(), s3?.stop()])
  dir.remove()
}, 60_000)

const pixel = (i: number) => [i % 251, (i * 3) % 251, (i * 7) % 251]
const pngFor = (i: number) =>
  encodePng(3, 2, 2, 8, [
    [pixel(i), pixel(i + 1), pixel(i + 2)],
    [pixel(i + 3), pixel(i + 4), pixel(i + 5)],
  ])

/** Uploads through the masters in turn; a master that does not answer is skipped for the other. */
async function upload(i: number): Promise<number> {
  for (let attempt = 0; attempt < 6; attempt++) {
    const master = masters[(i + attempt) % 2]!
    const answer = await fetch(`http://${master}/new`, { method: 'POST', body: pngFor(i), signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
    if (answer?.status === 200) return Number(await answer.text())
    await answer?.body?.cancel()
  }
  throw new Error(`upload ${i} was refused by both masters`)
}

describe('e2e: scale-out on Redis, PostgreSQL and S3', () => {
  test('every role registered its instances, and both kv instances list them', async () => {
    for (const kv of kvs) {
      const list = (await httpText(kv, '/list')).text
      for (const key of ['databaseAddress/', 'storageAddress/', 'masterAddress/']) expect(list.split('\n').filter((l) => l.startsWith(key)).length).toBe(2)
    }
  })

  test('300 uploads with a master and a worker killed midway: every task finished exactly once, every image correct', async () => {
    const ids = new Map<number, number>()
    for (let i = 0; i < UPLOADS; i++) {
      if (i === 100) await roles.get('master0')!.kill9()
      if (i === 150) await roles.get('worker0')!.kill9()
      ids.set(await upload(i), i)
    }
    expect(ids.size).toBe(UPLOADS)
    const live = masters[1]!
    const deadline = performance.now() + 90_000
    for (const [id, i] of ids) {
      await waitFor(
        `task ${id} to finish`,
        async () => (await httpText(live, `/isReady?id=${id}`)).text === '1',
        Math.max(1000, deadline - performance.now()),
      ).catch(async (error: Error) => {
        throw new Error(`${error.message}: ${(await httpText(live, `/status?id=${id}`)).text}`)
      })
      const { data } = await sharp(Buffer.from(await (await fetch(`http://${live}/get?id=${id}`)).arrayBuffer()))
        .ensureAlpha(1)
        .raw()
        .toBuffer({ resolveWithObject: true })
      const [r, g, b] = pixel(i)
      expect([...data.subarray(0, 4)]).toEqual([g!, r!, b!, 255])
    }
    // Exactly once: the database roles acknowledged each task's finish once, across both of them. A second
    // acknowledgement would be a line that has not happened: give the logs' pipes a moment to bring any such line.
    await Bun.sleep(300)
    const finishes = new Map<number, number>()
    for (const name of ['database0', 'database1']) {
      for (const line of (await Bun.file(roles.get(name)!.logFile).text()).split('\n')) {
        if (!line.includes('"msg":"task finished"')) continue
        const id = JSON.parse(line).id as number
        finishes.set(id, (finishes.get(id) ?? 0) + 1)
      }
    }
    expect([...ids.keys()].filter((id) => finishes.get(id) !== 1)).toEqual([])
    // Both surviving workers and both database roles took part.
    for (const name of ['worker1', 'worker2', 'database0', 'database1']) {
      expect(await Bun.file(roles.get(name)!.logFile).text()).toMatch(/"msg":"task (finished|claimed)"/)
    }
  })
})
