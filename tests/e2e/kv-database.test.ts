// kv and database as real processes: registration, the protocol over sockets, kill -9 and restart, SIGTERM, start-up failures.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const dir = tempDir('pixmill-e2e-')
const kvAddress = `127.0.0.1:${freePort()}`
const dbAddress = `127.0.0.1:${freePort()}`
let kv: RoleProcess
let db: RoleProcess

const startKv = () => spawnRole('kv', [kvAddress], { dataDir: dir.path, healthAt: kvAddress })
const startDb = () => spawnRole('database', [dbAddress, kvAddress], { dataDir: dir.path, healthAt: dbAddress, env: { PIXMILL_LEASE_SECONDS: '60' } })

beforeAll(async () => {
  kv = await startKv()
  db = await startDb()
})
afterAll(async () => {
  await Promise.allSettled([kv?.kill9(), db?.kill9()])
  dir.remove()
})

describe('e2e: kv and database processes', () => {
  test('the database registers its address in kv', async () => {
    // Healthy comes a moment before registered: wait for the key (as the conformance harness does).
    await waitFor('databaseAddress in kv', async () => (await httpText(kvAddress, '/get?key=databaseAddress')).status === 200, 10_000)
    expect(await httpText(kvAddress, '/get?key=databaseAddress')).toMatchObject({ status: 200, text: dbAddress })
    expect((await httpText(kvAddress, '/list')).text).toContain(`databaseAddress : ${dbAddress}\n`)
  })

  test('the protocol works over the network, and nothing acknowledged is lost to kill -9 of both', async () => {
    expect((await httpText(kvAddress, '/set?key=colour&value=green', { method: 'POST' })).text).toBe('success')
    expect((await httpText(kvAddress, '/set?key=gone&value=x', { method: 'POST' })).text).toBe('success')
    expect((await httpText(kvAddress, '/remove?key=gone', { method: 'DELETE' })).text).toBe('success')
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push((await httpText(dbAddress, '/newTask', { method: 'POST' })).text)
    expect(ids).toEqual(['0', '1', '2', '3', '4'])
    const claim = JSON.parse((await httpText(dbAddress, '/getNewTask', { method: 'POST' })).text)
    expect(claim).toMatchObject({ id: 0, state: 1 })
    expect((await httpText(dbAddress, '/finishTask?id=0', { method: 'POST' })).text).toBe('success')
    expect(JSON.parse((await httpText(dbAddress, '/getNewTask', { method: 'POST' })).text).id).toBe(1)
    expect((await httpText(dbAddress, '/setById', { method: 'POST', body: '{"id": 4, "state": 2}' })).text).toBe('success')

    await Promise.all([kv.kill9(), db.kill9()])
    kv = await startKv()
    db = await startDb()

    expect((await httpText(kvAddress, '/get?key=colour')).text).toBe('green')
    expect((await httpText(kvAddress, '/get?key=gone')).status).toBe(404)
    const states = (await httpText(dbAddress, '/list')).text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line).state)
    expect(states).toEqual([2, 1, 0, 0, 2])
    expect((await httpText(dbAddress, '/newTask', { method: 'POST' })).text).toBe('5')
    expect(JSON.parse((await httpText(dbAddress, '/getNewTask', { method: 'POST' })).text).id).toBe(2)
  })

  test('SIGTERM stops the database with exit code 0, and it comes back with its tasks', async () => {
    expect(await db.terminate()).toBe(0)
    db = await startDb()
    expect(JSON.parse((await httpText(dbAddress, '/getById?id=5')).text).state).toBe(0)
  })
})

describe('e2e: start-up failures', () => {
  test('too few or malformed arguments print the usage line and exit non-zero', async () => {
    for (const [role, args] of [
      ['database', []],
      ['database', ['nonsense', kvAddress]],
      ['kv', ['a', 'b']],
    ] as const) {
      const proc = Bun.spawnSync(['bun', 'run', `src/${role}.ts`, ...args], { cwd: `${import.meta.dir}/../..`, stderr: 'pipe' })
      expect(proc.exitCode).not.toBe(0)
      expect(proc.stderr.toString()).toContain(`usage: ${role}`)
    }
  })

  test('a bad setting fails at start, naming the variable', () => {
    const proc = Bun.spawnSync(['bun', 'run', 'src/kv.ts', `127.0.0.1:${freePort()}`], {
      cwd: `${import.meta.dir}/../..`,
      env: { ...process.env, PIXMILL_MAX_ATTEMPTS: 'three' },
      stderr: 'pipe',
    })
    expect(proc.exitCode).toBe(2)
    expect(proc.stderr.toString()).toContain('PIXMILL_MAX_ATTEMPTS')
  })

  test('a kv store that never comes: logged back-off, then a clear message and a non-zero exit', async () => {
    const nowhere = `127.0.0.1:${freePort()}`
    const proc = await spawnRole('database', [`127.0.0.1:${freePort()}`, nowhere], {
      dataDir: dir.path,
      env: { PIXMILL_KV_WAIT_SECONDS: '2' },
    })
    expect(await proc.exited).toBe(1)
    const log = await Bun.file(proc.logFile).text()
    expect(log).toContain('not yet, retrying')
    expect(log).toContain(`could not register in the kv store at ${nowhere}`)
  })

  test('a kv store that comes late: the role waits, then registers', async () => {
    const lateKv = `127.0.0.1:${freePort()}`
    const self = `127.0.0.1:${freePort()}`
    const late = tempDir('pixmill-late-')
    const database = await spawnRole('database', [self, lateKv], { dataDir: late.path })
    // The database starts first and keeps trying to register meanwhile: kv is late by design.
    await Bun.sleep(800)
    const store = await spawnRole('kv', [lateKv], { dataDir: late.path, healthAt: lateKv })
    try {
      await waitFor('databaseAddress in the late kv', async () => (await httpText(lateKv, '/get?key=databaseAddress')).status === 200, 10_000)
      expect(await httpText(lateKv, '/get?key=databaseAddress')).toMatchObject({ status: 200, text: self })
    } finally {
      await Promise.allSettled([database.kill9(), store.kill9()])
      late.remove()
    }
  })
})
