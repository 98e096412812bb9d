// Private results through app.handle: the master's task keys (made, checked, never answered from a cache to a wrong key),
// the token that stands in for a key, and what the lists and storage give away.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { call, ORIGIN } from '../helpers/http.ts'
import { TINY_PNG, TINY_PNG_SWAPPED } from '../helpers/png.ts'
import { inProcessStack } from '../helpers/stack.ts'

const TOKEN = 'route-test-token-0123456789'
const bearer = { authorization: `Bearer ${TOKEN}` }
const PNG = TINY_PNG
const RESULT = TINY_PNG_SWAPPED

let stack: ReturnType<typeof inProcessStack>
beforeEach(() => {
  stack = inProcessStack({ token: TOKEN, privateResults: true, waitPollMs: 10 })
})
afterEach(() => stack.close())

const master = (method: string, path: string, headers?: HeadersInit, body?: BodyInit) => call(stack.master, method, path, body, headers)

async function upload(): Promise<{ id: number; key: string }> {
  const got = await master('POST', '/new', { 'content-type': 'image/png' }, PNG)
  expect(got.status).toBe(200)
  return { id: Number(got.text), key: got.headers.get('x-task-key')! }
}

/** What a worker does, with the token: claim, store the result, report it finished. */
async function finish(id: number) {
  const claim = JSON.parse((await master('POST', '/getNewTask', bearer)).text)
  expect(claim.id).toBe(id)
  expect(claim.keyHash).toBeUndefined()
  await stack.storage.handle(new Request(`${ORIGIN}/sendImage?id=${id}&state=finished`, { method: 'POST', body: RESULT, headers: bearer }))
  expect((await master('POST', `/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`, bearer)).text).toBe('success')
}

/** Every read of a private result, for task `id` with this query suffix and these headers. */
const reads = (id: number, suffix: string) => [
  `/isReady?id=${id}${suffix}`,
  `/status?id=${id}${suffix}`,
  `/wait?id=${id}&timeout=1${suffix}`,
  `/get?id=${id}${suffix}`,
]

describe('master: private results (PIXMILL_PRIVATE_RESULTS=1)', () => {
  test('each upload answers its own key of at least 128 random bits, kept from caches; the database holds only its hash', async () => {
    const got = await master('POST', '/new', { 'content-type': 'image/png' }, PNG)
    const key = got.headers.get('x-task-key')!
    expect(key).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(got.headers.get('cache-control')).toBe('no-store')
    const other = await upload()
    expect(other.key).not.toBe(key)
    const record = JSON.parse((await call(stack.database, 'GET', `/getById?id=${got.text}`, null, bearer)).text)
    expect(record.keyHash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify(record)).not.toContain(key)
    const file = await Bun.file(`${stack.dir}/database/tasks.sqlite`).text()
    expect(file).not.toContain(key)
  })

  test('with its key (key= or X-Task-Key) every read works, down to the PNG', async () => {
    const { id, key } = await upload()
    expect((await master('GET', `/isReady?id=${id}&key=${key}`)).text).toBe('0')
    expect(JSON.parse((await master('GET', `/status?id=${id}`, { 'x-task-key': key })).text).state).toBe(0)
    await finish(id)
    expect((await master('GET', `/isReady?id=${id}`, { 'x-task-key': key })).text).toBe('1')
    expect(JSON.parse((await master('GET', `/wait?id=${id}&key=${key}`)).text).state).toBe(2)
    const image = await stack.master.handle(new Request(`${ORIGIN}/get?id=${id}&key=${key}`))
    expect(image.status).toBe(200)
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(RESULT)
  })

  test('a missing, forged, truncated, empty or another task’s key is answered exactly as an unknown id is', async () => {
    const { id, key } = await upload()
    const other = await upload()
    await finish(id)
    const unknownId = 424242
    const forged = 'A'.repeat(32)
    for (const path of reads(unknownId, '')) {
      const got = await master('GET', path)
      expect([path, got.status, got.text]).toEqual([path, 404, `Error: No task with id ${unknownId}.`])
    }
    const wrongKeys = ['', `&key=${forged}`, `&key=${key.slice(0, -1)}`, `&key=${key.slice(0, 8)}`, '&key=', `&key=${other.key}`, `&key=${key}x`]
    for (const suffix of wrongKeys) {
      for (const path of reads(id, suffix)) {
        const got = await master('GET', path)
        expect([path, got.status, got.text, got.headers.get('content-type')]).toEqual([path, 404, `Error: No task with id ${id}.`, 'text/plain; charset=utf-8'])
      }
    }
    for (const header of [forged, key.slice(0, -1), other.key]) {
      for (const path of reads(id, '')) expect((await master('GET', path, { 'x-task-key': header })).status).toBe(404)
    }
  })

  test('the token stands in for a key (workers, operators); a key given with it is still checked', async () => {
    const { id, key } = await upload()
    await finish(id)
    for (const path of reads(id, '')) expect([path, (await master('GET', path, bearer)).status]).toEqual([path, 200])
    for (const path of reads(id, `&key=${key.slice(1)}`)) expect([path, (await master('GET', path, bearer)).status]).toEqual([path, 404])
    for (const path of reads(id, '')) {
      expect((await master('GET', path, { authorization: `Bearer ${TOKEN.slice(0, -1)}` })).status).toBe(404)
    }
  })

  test('a state kept from a poll with the right key never answers a poll with a wrong one', async () => {
    const { id, key } = await upload()
    // Within the 250 ms that a sighting is trusted, one after the other.
    expect((await master('GET', `/isReady?id=${id}&key=${key}`)).text).toBe('0')
    expect((await master('GET', `/isReady?id=${id}&key=${key.slice(0, -1)}`)).status).toBe(404)
    expect((await master('GET', `/isReady?id=${id}`)).status).toBe(404)
    expect((await master('GET', `/get?id=${id}&key=x`)).status).toBe(404)
    expect((await master('GET', `/isReady?id=${id}&key=${key}`)).text).toBe('0')
  })

  test('a wait with a wrong key is refused at once, while one with the right key on the same task goes on to its end', async () => {
    const { id, key } = await upload()
    const waiting = master('GET', `/wait?id=${id}&timeout=10&key=${key}`)
    const started = performance.now()
    const refused = await master('GET', `/wait?id=${id}&timeout=10&key=${key.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}`)
    expect([refused.status, refused.text]).toEqual([404, `Error: No task with id ${id}.`])
    expect(performance.now() - started).toBeLessThan(3000)
    await finish(id)
    expect(JSON.parse((await waiting).text)).toMatchObject({ id, state: 2 })
  })

  test('the list of everyone’s tasks is for operators; counts stay open and give out no key', async () => {
    const { key } = await upload()
    expect((await master('GET', '/tasks')).status).toBe(401)
    const listed = await master('GET', '/tasks', bearer)
    expect(listed.status).toBe(200)
    expect(listed.text).not.toContain(key)
    expect(listed.text).not.toContain('keyHash')
    expect(JSON.parse((await master('GET', '/counts')).text)['not-started']).toBe(1)
  })

  test('storage’s images cannot be read around the master: its /getImage wants the token too', async () => {
    const { id } = await upload()
    expect((await call(stack.storage, 'GET', `/getImage?id=${id}&state=working`)).status).toBe(401)
    expect((await call(stack.storage, 'GET', `/getImage?id=${id}&state=working`, null, bearer)).status).toBe(200)
  })
})

describe('master: results not private (the default)', () => {
  test('an upload answers no key and every read is open, as the original protocol has it', async () => {
    const open = inProcessStack({ token: TOKEN })
    try {
      const got = await call(open.master, 'POST', '/new', PNG, { 'content-type': 'image/png' })
      expect(got.headers.get('x-task-key')).toBeNull()
      expect((await call(open.master, 'GET', `/isReady?id=${got.text}`)).text).toBe('0')
      // A key sent anyway changes nothing.
      expect((await call(open.master, 'GET', `/status?id=${got.text}&key=whatever`)).status).toBe(200)
      expect((await call(open.master, 'GET', '/tasks')).status).toBe(200)
      expect((await call(open.storage, 'GET', `/getImage?id=${got.text}&state=working`)).status).toBe(200)
    } finally {
      await open.close()
    }
  })
})
