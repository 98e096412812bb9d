// This project's roles mixed with the roles of the original design, both ways: what works and what degrades.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { firstPage, launchBrowser } from '../helpers/browser.ts'
import { type Cluster, logged, startCluster, waitFor } from '../helpers/cluster.ts'
import { originalKv, originalWorkerLoop, startOriginalSystem } from '../helpers/original-roles.ts'
import { type Bytes, chunk, concat, ihdrChunk, signature } from '../helpers/png.ts'
import { type Fixture, makeFixture } from '../helpers/png-fixtures.ts'
import { freePort, httpText, type RoleProcess, spawnRole, waitHealthy } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

/** PNGs of several kinds, with the result each must give. */
const FIXTURES: Fixture[] = [
  makeFixture({ ct: 2, depth: 8, width: 40, height: 30, seed: 1 }),
  makeFixture({ ct: 6, depth: 16, width: 33, height: 21, seed: 2, interlace: true }),
  makeFixture({ ct: 3, depth: 4, width: 17, height: 9, seed: 3, trns: true }),
  makeFixture({ ct: 0, depth: 1, width: 29, height: 5, seed: 4 }),
  makeFixture({ ct: 4, depth: 8, width: 12, height: 12, seed: 5, interlace: true }),
]

/** A PNG whose header is fine and whose pixel data is not: accepted at upload, refused by the codec. */
const BROKEN: Bytes = concat([signature(), ihdrChunk(8, 8, 8, 2), chunk('IDAT', Uint8Array.from([1, 2, 3, 4, 5])), chunk('IEND', new Uint8Array(0))])

async function expectResult(png: Uint8Array, fixture: Fixture): Promise<void> {
  const { data, info } = await sharp(png).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
  expect([info.width, info.height, info.channels]).toEqual([fixture.width, fixture.height, 4])
  expect(Buffer.from(data).equals(Buffer.from(fixture.expected))).toBe(true)
}

async function submitForm(frontend: string, png: Uint8Array): Promise<number> {
  const form = new FormData()
  form.append('uploadfile', new Blob([png as Bytes], { type: 'image/png' }), 'image.png')
  const answer = await httpText(frontend, '/submitTask', { method: 'POST', body: form })
  expect(answer.status).toBe(200)
  return Number(answer.text)
}

async function uploadRaw(master: string, png: Uint8Array): Promise<number> {
  const answer = await httpText(master, '/new', { method: 'POST', body: png as Bytes, headers: { 'content-type': 'image/png' } })
  expect(answer.status).toBe(200)
  return Number(answer.text)
}

async function waitReady(frontendOrMaster: string, id: number): Promise<void> {
  await waitFor(`task ${id} to be ready`, async () => (await httpText(frontendOrMaster, `/isReady?id=${id}`)).text === '1', 30_000, 50)
}

async function download(address: string, path: string): Promise<Uint8Array> {
  const response = await fetch(`http://${address}${path}`)
  expect(response.status).toBe(200)
  return new Uint8Array(await response.arrayBuffer())
}

describe('e2e: this project’s worker and frontend against the original kv, database, storage and master', () => {
  let system: Awaited<ReturnType<typeof startOriginalSystem>>
  let dir: ReturnType<typeof tempDir>
  let worker: RoleProcess
  let frontendProc: RoleProcess
  let frontend: string
  beforeAll(async () => {
    dir = tempDir('pixmill-original-')
    // A pair of someone else's in the kv too: the original `/list` answers every pair, whatever the prefix asked.
    system = await startOriginalSystem({ kvPairs: { theme: 'dark' } })
    frontend = `127.0.0.1:${freePort()}`
    const env = { PIXMILL_KV_WAIT_SECONDS: '10' }
    worker = await spawnRole('worker', [system.kv.address, '2'], { dataDir: dir.path, env })
    frontendProc = await spawnRole('frontend', [system.kv.address, frontend], { dataDir: dir.path, env })
    // An original master has no /health: the frontend counts an answer from its router as up.
    await waitHealthy(frontend, 20_000, frontendProc)
  })
  afterAll(async () => {
    await Promise.allSettled([worker?.kill9(), frontendProc?.kill9()])
    await system?.stop()
    dir?.remove()
  })

  test('PNGs of several kinds, uploaded through the frontend and through the master, come back swapped exactly', async () => {
    const ids = await Promise.all(
      FIXTURES.map((fixture, i) => (i % 2 === 0 ? submitForm(frontend, fixture.png) : uploadRaw(system.master.address, fixture.png))),
    )
    for (const [i, id] of ids.entries()) {
      await waitReady(frontend, id)
      await expectResult(await download(frontend, `/getImage?id=${id}`), FIXTURES[i]!)
    }
    // The worker found each peer by its own key only (it once took every pair of the kv for masters).
    const found = logged(worker.logFile, 'found masterAddress')
    expect(found.at(-1)?.instances).toEqual([system.master.address])
    expect(logged(worker.logFile, 'found storageAddress').at(-1)?.instances).toEqual([system.storage.address])
  })

  test('the frontend follows tasks with /isReady, says so, and its board says that this master offers no status', async () => {
    const id = await submitForm(frontend, FIXTURES[0]!.png)
    await waitReady(frontend, id)
    expect(JSON.parse((await httpText(frontend, `/api/status?id=${id}`)).text)).toEqual({ id, state: 2, stateName: 'finished', readinessOnly: true })
    expect((await httpText(frontend, `/task?id=${id}`)).text).toContain('Finished')
    const board = JSON.parse((await httpText(frontend, '/api/board')).text)
    expect(board.unavailable).toMatch(/offers no status/)
    expect(board.counts).toBeUndefined()
    const retry = await httpText(frontend, `/api/retry?id=${id}`, { method: 'POST' })
    expect(retry.status).toBe(501)
    expect(retry.text).toMatch(/^Error: .*does not offer \/retryTask/)
    expect((await httpText(frontend, '/api/status?id=999')).status).toBe(404)
  })

  test('in a browser: the page shows an upload as not finished, then finished; the board says why it is empty', async () => {
    writeFileSync(join(dir.path, 'picture.png'), FIXTURES[0]!.png)
    // Never finished: the worker cannot decode it and this master cannot record a failure.
    writeFileSync(join(dir.path, 'broken.png'), BROKEN)
    const context = await launchBrowser(join(dir.path, 'browser'))
    try {
      const page = await firstPage(context)
      await page.goto(`http://${frontend}/`)
      await page.setInputFiles('#uploadfile', [join(dir.path, 'picture.png'), join(dir.path, 'broken.png')])
      const card = page.locator('.task', { hasText: 'picture.png' })
      await card.and(page.locator('[data-state="2"]')).waitFor({ timeout: 30_000 })
      const broken = page.locator('.task', { hasText: 'broken.png' })
      await broken.locator('.badge', { hasText: 'Not finished' }).waitFor({ timeout: 20_000 })
      expect(await broken.locator('.task-message').textContent()).toContain('tells only when the image is ready')
      await page.goto(`http://${frontend}/board`)
      await page.locator('#board-unavailable', { hasText: 'offers no status' }).waitFor()
      expect(await page.locator('.board-figures').isHidden()).toBe(true)
    } finally {
      await context.close()
    }
  }, 60_000)

  test('an image the worker cannot decode is logged and left to its lease, as the original worker did', async () => {
    const id = await uploadRaw(system.master.address, BROKEN)
    await waitFor(
      'the worker to give up on the broken image',
      () => logged(worker.logFile, 'the master cannot record a failure; leaving the task to its lease', id).length > 0,
      20_000,
    )
    expect(logged(worker.logFile, /registerTaskFailed|retrying/, id)).toEqual([])
    // Still in progress in the original database, and "not finished" to the frontend, which cannot tell more.
    expect(system.database.tasks[id]?.state).toBe(1)
    expect(JSON.parse((await httpText(frontend, `/api/status?id=${id}`)).text)).toMatchObject({ id, state: 0, stateName: 'not-finished' })
    expect((await httpText(frontend, `/task?id=${id}`)).text).toContain('Not finished yet')
    // The worker goes on with the next task.
    const next = await uploadRaw(system.master.address, FIXTURES[3]!.png)
    await waitReady(frontend, next)
  })
})

describe('e2e: this project’s master, worker and frontend against the original kv, database and storage', () => {
  let system: Awaited<ReturnType<typeof startOriginalSystem>>
  let dir: ReturnType<typeof tempDir>
  const procs: RoleProcess[] = []
  let master: string
  let frontend: string
  beforeAll(async () => {
    dir = tempDir('pixmill-original-')
    system = await startOriginalSystem()
    // The original master goes; ours takes over its key.
    await system.master.stop()
    master = `127.0.0.1:${freePort()}`
    frontend = `127.0.0.1:${freePort()}`
    const env = { PIXMILL_KV_WAIT_SECONDS: '10' }
    procs.push(await spawnRole('master', [master, system.kv.address], { dataDir: dir.path, env, healthAt: master }))
    procs.push(await spawnRole('worker', [system.kv.address, '1'], { dataDir: dir.path, env }))
    procs.push(await spawnRole('frontend', [system.kv.address, frontend], { dataDir: dir.path, env, healthAt: frontend }))
  })
  afterAll(async () => {
    await Promise.allSettled(procs.map((proc) => proc.kill9()))
    await system?.stop()
    dir?.remove()
  })

  test('uploads are stored under ids of the original database and processed; /status and the lists are not offered', async () => {
    // An original kv keeps every pair for ever: our master registered only the plain key there.
    expect(system.kv.pairs.get('masterAddress')).toBe(master)
    expect([...system.kv.pairs.keys()].filter((key) => key.includes('/'))).toEqual([])
    const ids = []
    for (const fixture of FIXTURES.slice(0, 3)) ids.push(await uploadRaw(master, fixture.png))
    expect(ids).toEqual([0, 1, 2])
    for (const [i, id] of ids.entries()) {
      await waitReady(master, id)
      await expectResult(await download(master, `/get?id=${id}`), FIXTURES[i]!)
    }
    expect(system.database.calls).toContain('/newTask')
    const status = await httpText(master, '/status?id=0')
    expect(status.status).toBe(501)
    expect(status.text).toMatch(/^Error: /)
    for (const path of ['/counts', '/tasks', '/tasks?before=2', '/events?id=0', '/history?window=hour']) expect((await httpText(master, path)).status).toBe(501)
    // Through the frontend, the same master's tasks are followed by /isReady.
    expect(JSON.parse((await httpText(frontend, '/api/status?id=0')).text)).toMatchObject({ state: 2, readinessOnly: true })
    expect(JSON.parse((await httpText(frontend, '/api/board')).text).unavailable).toBeString()
  })

  test('the master asks for a held task once, then goes straight to /newTask', async () => {
    const before = system.database.calls.filter((path) => path === '/reserveTask').length
    await uploadRaw(master, FIXTURES[4]!.png)
    await uploadRaw(master, FIXTURES[4]!.png)
    expect(system.database.calls.filter((path) => path === '/reserveTask').length).toBe(before)
  })
})

describe('e2e: the original protocol against this project’s roles', () => {
  let cluster: Cluster
  afterEach(async () => {
    await cluster?.close()
  })

  test('an original worker loop (plain claim, fetch, store, finish) processes every upload', async () => {
    cluster = await startCluster()
    const ids = []
    for (const fixture of FIXTURES) ids.push(await cluster.uploadOk(fixture.png))
    const stop = new AbortController()
    const loop = originalWorkerLoop(cluster.address.kv, stop.signal)
    try {
      for (const [i, id] of ids.entries()) {
        expect(await cluster.waitState(id, [2])).toMatchObject({ state: 2, attempts: 0 })
        await expectResult(await download(cluster.address.master, `/get?id=${id}`), FIXTURES[i]!)
      }
    } finally {
      stop.abort()
    }
    const { done, errors } = await loop
    expect(done.sort()).toEqual(ids)
    expect(errors).toEqual([])
  })

  test('every role of this project registers in an original kv by its plain key only, and the whole system works there', async () => {
    const kv = originalKv()
    const dir = tempDir('pixmill-original-kv-')
    const procs: RoleProcess[] = []
    try {
      const env = { PIXMILL_KV_WAIT_SECONDS: '10', PIXMILL_REGISTRATION_TTL_SECONDS: '3' }
      const address = { database: `127.0.0.1:${freePort()}`, storage: `127.0.0.1:${freePort()}`, master: `127.0.0.1:${freePort()}` }
      for (const role of ['database', 'storage', 'master'] as const) {
        procs.push(await spawnRole(role, [address[role], kv.address], { dataDir: dir.path, env, healthAt: address[role] }))
      }
      procs.push(await spawnRole('worker', [kv.address, '1'], { dataDir: dir.path, env }))
      const id = await uploadRaw(address.master, FIXTURES[1]!.png)
      await waitReady(address.master, id)
      await expectResult(await download(address.master, `/get?id=${id}`), FIXTURES[1]!)
      // After a few heartbeats: still the plain keys only (an instance key would stay there for ever).
      await Bun.sleep(1200)
      expect(Object.fromEntries(kv.pairs)).toEqual({ databaseAddress: address.database, storageAddress: address.storage, masterAddress: address.master })
    } finally {
      await Promise.allSettled(procs.map((proc) => proc.kill9()))
      await kv.stop()
      dir.remove()
    }
  })
})
