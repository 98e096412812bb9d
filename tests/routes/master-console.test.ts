// master routes behind an operator's console, over real in-process database and storage apps: /events, /history, /tasks pages.
import { afterEach, describe, expect, test } from 'bun:test'
import { createDatabaseClient } from '../../src/clients/database-client.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createStorageClient } from '../../src/clients/storage-client.ts'
import { createMasterApp } from '../../src/roles/master/app.ts'
import { call, inProcess } from '../helpers/http.ts'
import { TINY_PNG } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'

const TOKEN = 'console-test-token-0123456789'
const PNG = TINY_PNG
/** 2026-01-01 12:00:30 UTC: half a minute into a minute. */
const T0 = Date.UTC(2026, 0, 1, 12, 0, 30)

let stack: ReturnType<typeof inProcessStack> | undefined
let clock = T0
afterEach(async () => {
  await stack?.close()
  stack = undefined
})

function start(options: { token?: string; privateResults?: boolean } = {}) {
  clock = T0
  stack = inProcessStack({ now: () => clock, ...options })
  return stack
}

const headers = (token?: string) => (token ? { authorization: `Bearer ${token}` } : undefined)
const get = (path: string, token?: string) => call(stack!.master, 'GET', path, null, headers(token))
const post = (path: string, token?: string, body?: BodyInit) =>
  call(stack!.master, 'POST', path, body, { ...headers(token), ...(body ? { 'content-type': 'image/png' } : {}) })
const json = async (path: string, token?: string) => JSON.parse((await get(path, token)).text)

/** Uploads, claims and finishes a task `ms` after its claim, as a worker would; answers its id. */
async function uploadAndFinish(ms: number, token?: string): Promise<number> {
  const id = Number((await post('/new', token, PNG)).text)
  const claim = JSON.parse((await post('/getNewTask', token)).text)
  clock += ms
  expect((await post(`/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`, token)).text).toBe('success')
  return id
}

describe('master: GET /events', () => {
  test('a task’s timeline from the upload through the worker API, as the database answers it; 404 and 400 with Error: bodies', async () => {
    start()
    const id = await uploadAndFinish(120)
    expect(await json(`/events?id=${id}`)).toEqual([
      { at: '2026-01-01T12:00:30.000Z', event: 'created' },
      { at: '2026-01-01T12:00:30.000Z', event: 'claimed', attempt: 1 },
      { at: '2026-01-01T12:00:30.120Z', event: 'finished', attempt: 1, ms: 120 },
    ])
    expect(await get('/events?id=9')).toMatchObject({ status: 404, text: 'Error: No task with id 9.' })
    const bad = await get('/events?id=x')
    expect(bad.status).toBe(400)
    expect(bad.text).toStartWith('Error:')
  })

  test('with private results it is for operators (the token), as /tasks is; /history and /counts stay open', async () => {
    start({ token: TOKEN, privateResults: true })
    const id = await uploadAndFinish(5, TOKEN)
    expect((await get(`/events?id=${id}`)).status).toBe(401)
    expect((await get(`/events?id=${id}`, TOKEN)).status).toBe(200)
    expect((await get('/history')).status).toBe(200)
    expect((await get('/counts')).status).toBe(200)
  })
})

describe('master: GET /history', () => {
  test('window=hour: 60 buckets of a minute, the current one last, with the uploads, finishes and processing time', async () => {
    start()
    await uploadAndFinish(40)
    await uploadAndFinish(60)
    await stack!.tasks.sampleQueue()
    const history = await json('/history?window=hour')
    expect(history.step).toBe(60_000)
    expect(history.since).toBe('2026-01-01T11:01:00.000Z')
    expect(history.buckets.length).toBe(60)
    expect(history.buckets.at(-1)).toEqual({
      at: '2026-01-01T12:00:00.000Z',
      created: 2,
      finished: 2,
      failed: 0,
      failedForGood: 0,
      waiting: 0,
      inProgress: 0,
      processingMs: { count: 2, p50: 50, p95: 95 },
    })
    expect(history.buckets.slice(0, -1).every((b: { created: number; waiting: unknown }) => b.created === 0 && b.waiting === null)).toBe(true)
    // Without a window: the hour.
    expect((await json('/history')).buckets.length).toBe(60)
  })

  test('window=day: 96 buckets of 15 minutes; a bad window is 400 with an Error: body', async () => {
    start()
    await uploadAndFinish(1)
    const day = await json('/history?window=day')
    expect(day.step).toBe(900_000)
    expect(day.buckets.length).toBe(96)
    expect(day.since).toBe('2025-12-31T12:15:00.000Z')
    expect(day.buckets.at(-1)).toMatchObject({ at: '2026-01-01T12:00:00.000Z', created: 1, finished: 1 })
    const bad = await get('/history?window=week')
    expect(bad.status).toBe(400)
    expect(bad.text).toStartWith('Error:')
  })
})

describe('master: GET /tasks?before=', () => {
  test('pages through the tasks newest first; new uploads do not move a page', async () => {
    start()
    for (let i = 0; i < 5; i++) await post('/new', undefined, PNG)
    const page = async (query: string) => (await json(`/tasks?limit=2${query}`)).map((t: { id: number }) => t.id)
    expect(await page('')).toEqual([4, 3])
    await post('/new', undefined, PNG)
    expect(await page('&before=3')).toEqual([2, 1])
    expect(await page('&before=1')).toEqual([0])
    expect(await page('&before=1&state=2')).toEqual([])
  })
})

describe('the master client for the frontend: events, history, tasks', () => {
  test('reads the same answers through the master', async () => {
    start()
    const id = await uploadAndFinish(20)
    await post('/new', undefined, PNG)
    const client = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), inProcess(stack!.master))
    expect((await client.events(id)).map((e) => e.event)).toEqual(['created', 'claimed', 'finished'])
    expect((await client.history('day')).buckets.length).toBe(96)
    expect((await client.history()).step).toBe(60_000)
    expect((await client.tasks({ limit: 5, before: 1 })).map((t) => t.id)).toEqual([0])
    await expect(client.events(99)).rejects.toMatchObject({ status: 404 })
  })
})

describe('master over an original database', () => {
  test('/events, /history and /tasks?before= answer 501 with an Error: body', async () => {
    // A database of the original protocol: its router knows none of these paths.
    const original = async () => new Response('404 page not found\n', { status: 404 })
    const master = createMasterApp({
      database: createDatabaseClient(fixedPeer('databaseAddress', 'database.local'), original),
      storage: createStorageClient(fixedPeer('storageAddress', 'storage.local'), original),
      maxUploadBytes: 1024,
      dependenciesHealthy: async () => ({ database: true, storage: true }),
      ...quietDeps('master'),
    })
    for (const path of ['/events?id=0', '/history?window=hour', '/history?window=day', '/tasks?before=3']) {
      const got = await call(master, 'GET', path)
      expect(got.status).toBe(501)
      expect(got.text).toStartWith('Error:')
    }
  })
})
