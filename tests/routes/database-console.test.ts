// database routes behind an operator's console through app.handle: /events, /history, and /tasks pages with before=.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createDatabaseApp } from '../../src/roles/database/app.ts'
import { createRemoval } from '../../src/roles/database/removal.ts'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import type { TaskStore } from '../../src/roles/database/task-store.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { call } from '../helpers/http.ts'
import { quietDeps } from '../helpers/silent.ts'
import { tempDir } from '../helpers/temp.ts'

const T0 = Date.UTC(2026, 0, 1, 12, 0)
let dir: ReturnType<typeof tempDir>
let store: TaskStore
let app: ReturnType<typeof createDatabaseApp>
let clock: number
beforeEach(() => {
  dir = tempDir()
  clock = T0
  store = openSqliteTaskStore(join(dir.path, 'database'), { leaseSeconds: 60, maxAttempts: 2, now: () => clock })
  const removal = createRemoval({ store, images: { remove: async () => {} }, log: silentLogger, retentionSeconds: 0, now: () => clock })
  app = createDatabaseApp({ store, removal, now: () => clock, ...quietDeps('database') })
})
afterEach(async () => {
  await store.close()
  dir.remove()
})

const json = async (method: string, path: string) => {
  const got = await call(app, method, path)
  return { ...got, body: got.status === 200 ? JSON.parse(got.text) : undefined }
}

/** Claims the next task and answers its lease token. */
const claim = async () => (await json('POST', '/getNewTask')).body.leaseToken as string

describe('database: GET /events', () => {
  test('a task’s timeline as JSON, oldest first, with ISO times, attempts, errors and processing time', async () => {
    await call(app, 'POST', '/newTask')
    clock += 100
    let lease = await claim()
    clock += 250
    await call(app, 'POST', `/failTask?id=0&lease=${lease}&error=${encodeURIComponent('cannot decode')}`)
    lease = await claim()
    clock += 40
    expect((await call(app, 'POST', `/finishTask?id=0&lease=${lease}`)).status).toBe(200)
    expect((await json('GET', '/events?id=0')).body).toEqual([
      { at: '2026-01-01T12:00:00.000Z', event: 'created' },
      { at: '2026-01-01T12:00:00.100Z', event: 'claimed', attempt: 1 },
      { at: '2026-01-01T12:00:00.350Z', event: 'failed', attempt: 1, error: 'cannot decode', forGood: false },
      { at: '2026-01-01T12:00:00.350Z', event: 'claimed', attempt: 2 },
      { at: '2026-01-01T12:00:00.390Z', event: 'finished', attempt: 2, ms: 40 },
    ])
  })

  test('released, lease_expired (seen by the read itself) and retried, through the routes that make them', async () => {
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', `/releaseTask?id=0&lease=${await claim()}`)
    await claim()
    clock += 60_001
    await claim()
    clock += 60_001
    const events = (await json('GET', '/events?id=0')).body
    expect(events.map((e: { event: string }) => e.event)).toEqual(['created', 'claimed', 'released', 'claimed', 'lease_expired', 'claimed', 'lease_expired'])
    expect(events.at(-1)).toEqual({ at: new Date(T0 + 120_002).toISOString(), event: 'lease_expired', attempt: 2, forGood: true })
    await call(app, 'POST', '/retryTask?id=0')
    expect((await json('GET', '/events?id=0')).body.at(-1)).toEqual({ at: new Date(T0 + 120_002).toISOString(), event: 'retried' })
  })

  test('an unknown id, a held task and a deleted one are 404 with an Error: body; a bad id is 400', async () => {
    await call(app, 'POST', '/reserveTask')
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', `/finishTask?id=1&lease=${await claim()}`)
    await call(app, 'POST', '/deleteTask?id=1')
    for (const id of [0, 1, 7]) expect(await call(app, 'GET', `/events?id=${id}`)).toMatchObject({ status: 404, text: `Error: No task with id ${id}.` })
    for (const id of ['x', '01', '-1', '']) {
      const got = await call(app, 'GET', `/events?id=${id}`)
      expect(got.status).toBe(400)
      expect(got.text).toStartWith('Error:')
    }
  })
})

describe('database: GET /history', () => {
  test('every bucket from since to now with its figures, the queue’s last sample and processing percentiles', async () => {
    for (let i = 0; i < 3; i++) await call(app, 'POST', '/newTask')
    await store.sampleQueue()
    clock += 60_000
    // Minute 1: two finished after 60 and 80 ms, one failed for good after two attempts.
    for (const ms of [60, 80]) {
      const lease = await claim()
      clock += ms
      const id = (await json('GET', '/tasks?state=1')).body[0].id
      await call(app, 'POST', `/finishTask?id=${id}&lease=${lease}`)
    }
    for (let i = 0; i < 2; i++) await call(app, 'POST', `/failTask?id=2&lease=${await claim()}&error=bad`)
    clock = T0 + 3 * 60_000 + 10_000
    await store.sampleQueue()
    const { status, body } = await json('GET', `/history?since=${T0 + 59_999 - 60_000}&step=120000`)
    expect(status).toBe(200)
    expect(body).toEqual({
      since: '2026-01-01T11:59:00.000Z',
      step: 120_000,
      buckets: [
        {
          at: '2026-01-01T11:59:00.000Z',
          created: 3,
          finished: 0,
          failed: 0,
          failedForGood: 0,
          waiting: 3,
          inProgress: 0,
          processingMs: { count: 0, p50: null, p95: null },
        },
        {
          at: '2026-01-01T12:01:00.000Z',
          created: 0,
          finished: 2,
          failed: 2,
          failedForGood: 1,
          waiting: null,
          inProgress: null,
          processingMs: { count: 2, p50: 75, p95: 97.5 },
        },
        {
          at: '2026-01-01T12:03:00.000Z',
          created: 0,
          finished: 0,
          failed: 0,
          failedForGood: 0,
          waiting: 0,
          inProgress: 0,
          processingMs: { count: 0, p50: null, p95: null },
        },
      ],
    })
  })

  test.each([
    ['no since', '/history?step=60000'],
    ['no step', `/history?since=${T0}`],
    ['a step that is no whole minute', `/history?since=${T0}&step=90000`],
    ['a step of 0', `/history?since=${T0}&step=0`],
    ['a since in the future', `/history?since=${T0 + 120_000}&step=60000`],
    ['more than 1440 buckets', `/history?since=${T0 - 1440 * 60_000}&step=60000`],
    ['a since that is no number', '/history?since=yesterday&step=60000'],
  ])('%s is 400 with an Error: body', async (_what, path) => {
    const got = await call(app, 'GET', path)
    expect(got.status).toBe(400)
    expect(got.text).toStartWith('Error:')
  })

  test('1440 buckets is the most, and a quiet day is all zeros', async () => {
    const { body } = await json('GET', `/history?since=${T0 - 1439 * 60_000}&step=60000`)
    expect(body.buckets.length).toBe(1440)
    expect(body.buckets.every((b: { created: number; waiting: null }) => b.created === 0 && b.waiting === null)).toBe(true)
  })
})

describe('database: GET /tasks?before=', () => {
  test('pages newest first from before the given id, unmoved by new tasks; a bad before is 400', async () => {
    for (let i = 0; i < 5; i++) await call(app, 'POST', '/newTask')
    const ids = async (query: string) => (await json('GET', `/tasks?${query}`)).body.map((t: { id: number }) => t.id)
    expect(await ids('limit=2')).toEqual([4, 3])
    await call(app, 'POST', '/newTask')
    expect(await ids('limit=2&before=3')).toEqual([2, 1])
    expect(await ids('limit=2&before=1')).toEqual([0])
    expect(await ids('state=0&before=6')).toEqual([5, 4, 3, 2, 1, 0])
    const bad = await call(app, 'GET', '/tasks?before=-1')
    expect(bad.status).toBe(400)
    expect(bad.text).toStartWith('Error:')
  })
})

describe('database: /events and /history are internal', () => {
  test('with PIXMILL_TOKEN set they want it, as every database route', async () => {
    const token = 'database-console-token-0123'
    const removal = createRemoval({ store, images: { remove: async () => {} }, log: silentLogger, retentionSeconds: 0 })
    const guarded = createDatabaseApp({ store, removal, token, now: () => clock, ...quietDeps('database') })
    await store.create()
    for (const path of ['/events?id=0', `/history?since=${T0}&step=60000`]) {
      expect((await call(guarded, 'GET', path)).status).toBe(401)
      expect((await call(guarded, 'GET', path, null, { authorization: `Bearer ${token}` })).status).toBe(200)
    }
  })
})
