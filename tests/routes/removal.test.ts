// Removing tasks with their images through the roles' routes: an operator's delete and the retention sweep.
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { HELD_TASK_TTL_MS } from '../../src/roles/database/task-store.ts'
import { call } from '../helpers/http.ts'
import { encodePng } from '../helpers/png.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { storedImages } from '../helpers/stored-files.ts'

const PNG = encodePng(2, 2, 2, 8, [
  [
    [1, 2, 3],
    [4, 5, 6],
  ],
  [
    [7, 8, 9],
    [10, 11, 12],
  ],
])
const TOKEN = 'a-token-of-sixteen-or-more'

let stack: ReturnType<typeof inProcessStack>
let clock = Date.UTC(2026, 5, 1)
afterEach(() => stack?.close())

function start(options: Parameters<typeof inProcessStack>[0] = {}) {
  clock = Date.UTC(2026, 5, 1)
  stack = inProcessStack({ now: () => clock, ...options })
  return stack
}

const auth = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {})
const master = (method: string, path: string, token?: string) => call(stack.master, method, path, null, auth(token))

async function upload(token?: string): Promise<number> {
  const got = await call(stack.master, 'POST', '/new', PNG, { 'content-type': 'image/png', ...auth(token) })
  expect(got.status).toBe(200)
  return Number(got.text)
}

/** A worker's round: claim the oldest task, store a result, finish it. */
async function process(token?: string): Promise<number> {
  const claim = JSON.parse((await master('POST', '/getNewTask', token)).text) as { id: number }
  const stored = await call(stack.storage, 'POST', `/sendImage?id=${claim.id}&state=finished`, PNG, { 'content-type': 'image/png', ...auth(token) })
  expect(stored.text).toBe('success')
  expect((await master('POST', `/registerTaskFinished?id=${claim.id}`, token)).text).toBe('success')
  return claim.id
}

/** A task that fails for good (two attempts in this stack). */
async function failForGood(): Promise<number> {
  const id = await upload()
  for (let i = 0; i < 2; i++) {
    await master('POST', '/getNewTask')
    await master('POST', `/registerTaskFailed?id=${id}&error=broken`)
  }
  return id
}

const images = () => storedImages(join(stack.dir, 'storage'))

async function expectGone(id: number): Promise<void> {
  for (const path of [`/isReady?id=${id}`, `/get?id=${id}`, `/status?id=${id}`]) {
    const got = await master('GET', path)
    expect(got.status).toBe(404)
    expect(got.text).toStartWith('Error:')
  }
  expect((await call(stack.database, 'GET', `/getById?id=${id}`)).status).toBe(404)
  for (const area of ['working', 'finished']) expect((await call(stack.storage, 'GET', `/getImage?id=${id}&state=${area}`)).status).toBe(404)
  expect(images().filter((name) => name.endsWith(`/${id}.png`))).toEqual([])
}

describe('master: POST /deleteTask', () => {
  test('a finished task goes with both its images; every role answers 404 for it, and its id is never given again', async () => {
    start()
    const id = await upload()
    await process()
    const other = await upload()
    expect(images()).toEqual(['finished/0.png', 'working/0.png', 'working/1.png'])
    expect(await master('POST', `/deleteTask?id=${id}`)).toMatchObject({ status: 200, text: 'success' })
    await expectGone(id)
    expect(images()).toEqual([`working/${other}.png`])
    expect(await upload()).toBe(2)
    expect((await master('GET', '/counts')).text).toBe('{"not-started":2,"in-progress":0,"finished":0,"failed":0}')
  })

  test('a failed task goes too; a waiting or in-progress one answers 409 and stays exactly as it was', async () => {
    start()
    const failed = await failForGood()
    expect((await master('POST', `/deleteTask?id=${failed}`)).status).toBe(200)
    await expectGone(failed)
    const waiting = await upload()
    const before = (await master('GET', `/status?id=${waiting}`)).text
    const refused = await master('POST', `/deleteTask?id=${waiting}`)
    expect(refused.status).toBe(409)
    expect(refused.text).toMatch(/^Error: .*waiting/)
    expect((await master('GET', `/status?id=${waiting}`)).text).toBe(before)
    expect(images()).toContain(`working/${waiting}.png`)
    await master('POST', '/getNewTask')
    expect((await master('POST', `/deleteTask?id=${waiting}`)).status).toBe(409)
    expect(JSON.parse((await master('GET', `/status?id=${waiting}`)).text).state).toBe(1)
  })

  test('bad input: malformed ids 400, unknown or removed ids 404, wrong methods 405, all with an Error: body', async () => {
    start()
    for (const bad of ['', 'abc', '-1', '1.5', '01', '1e2', '0x1', '%20', 'id=1&id=2']) {
      const got = await master('POST', `/deleteTask?id=${bad}`)
      expect(got.status).toBe(400)
      expect(got.text).toStartWith('Error:')
    }
    expect((await master('POST', '/deleteTask')).status).toBe(400)
    expect((await master('POST', '/deleteTask?id=12345')).status).toBe(404)
    const removed = await failForGood()
    await master('POST', `/deleteTask?id=${removed}`)
    expect((await master('POST', `/deleteTask?id=${removed}`)).status).toBe(404)
    const wrong = await master('GET', '/deleteTask?id=0')
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
  })

  test('with PIXMILL_TOKEN it is an operator’s call: refused without the token, done with it', async () => {
    start({ token: TOKEN })
    const id = await upload()
    await process(TOKEN)
    const refused = await master('POST', `/deleteTask?id=${id}`)
    expect(refused.status).toBe(401)
    expect(images()).toContain(`finished/${id}.png`)
    expect((await master('POST', `/deleteTask?id=${id}`, TOKEN)).status).toBe(200)
    expect((await call(stack.storage, 'POST', `/deleteImage?id=${id}&state=working`)).status).toBe(401)
  })

  test('storage down: a 5xx, the task already out of sight with its images kept; the same call later completes it', async () => {
    start()
    const id = await upload()
    await process()
    stack.setStorageUp(false)
    const got = await master('POST', `/deleteTask?id=${id}`)
    // The database's 503, passed on by the master as its dependency's failure.
    expect(got.status).toBe(502)
    expect(got.text).toMatch(/^Error: .*later sweep/)
    expect((await master('GET', `/isReady?id=${id}`)).status).toBe(404)
    expect(images()).toEqual([`finished/${id}.png`, `working/${id}.png`])
    stack.setStorageUp(true)
    expect((await master('POST', `/deleteTask?id=${id}`)).status).toBe(200)
    await expectGone(id)
  })
})

describe('database: the retention sweep', () => {
  test('removes finished and failed tasks that ended longer ago than the retention, with their images; never pending ones', async () => {
    start({ retentionSeconds: 3600 })
    const finished = await upload()
    await process()
    const failed = await failForGood()
    const waiting = await upload()
    const working = await upload()
    await master('POST', '/getNewTask')
    await master('POST', '/getNewTask')
    await master('POST', `/releaseTask?id=${waiting}`)
    clock += 3_599_000
    expect(await stack.removal.sweep()).toBe(0)
    clock += 2000
    // Long past its lease, the task in progress is back at 0: pending, never removed however old.
    expect(await stack.removal.sweep()).toBe(2)
    await expectGone(finished)
    await expectGone(failed)
    expect(JSON.parse((await master('GET', `/status?id=${waiting}`)).text).state).toBe(0)
    expect(JSON.parse((await master('GET', `/status?id=${working}`)).text).state).toBe(0)
    expect(images()).toEqual([`working/${waiting}.png`, `working/${working}.png`])
    clock += 10 * 24 * 3_600_000
    expect(await stack.removal.sweep()).toBe(0)
    expect(await upload()).toBe(working + 1)
  })

  test('retention 0 keeps every task; an upload that never completed is removed with its image after an hour', async () => {
    start({ retentionSeconds: 0 })
    await upload()
    await process()
    // A reservation whose image reached storage but whose activation never came (the master died in between).
    const held = Number((await call(stack.database, 'POST', '/reserveTask')).text)
    await call(stack.storage, 'POST', `/sendImage?id=${held}&state=working`, PNG, { 'content-type': 'image/png' })
    clock += HELD_TASK_TTL_MS - 1000
    expect(await stack.removal.sweep()).toBe(0)
    clock += 2000
    expect(await stack.removal.sweep()).toBe(1)
    expect(images()).toEqual(['finished/0.png', 'working/0.png'])
    clock += 365 * 24 * 3_600_000
    expect(await stack.removal.sweep()).toBe(0)
    expect((await master('GET', '/isReady?id=0')).text).toBe('1')
  })

  test('storage down mid-sweep: the tasks are out of sight at once, their images stay, and the next sweep completes it', async () => {
    start({ retentionSeconds: 60 })
    for (let i = 0; i < 3; i++) {
      await upload()
      await process()
    }
    clock += 61_000
    stack.setStorageUp(false)
    expect(await stack.removal.sweep()).toBe(0)
    for (const id of [0, 1, 2]) expect((await master('GET', `/isReady?id=${id}`)).status).toBe(404)
    expect(images().length).toBe(6)
    stack.setStorageUp(true)
    expect(await stack.removal.sweep()).toBe(3)
    expect(images()).toEqual([])
    const metrics = (await call(stack.database, 'GET', '/metrics')).text
    expect(metrics).toMatch(/^pixmill_tasks\{state="finished",[^}]*\} 0$/m)
  })
})
