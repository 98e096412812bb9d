// database routes through app.handle: the original endpoints, the project's own, and their errors.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createDatabaseApp, createDatabaseClaimWaits } from '../../src/roles/database/app.ts'
import type { ClaimWaits } from '../../src/roles/database/claim-waits.ts'
import { createRemoval, type Removal } from '../../src/roles/database/removal.ts'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import type { TaskStore } from '../../src/roles/database/task-store.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { call } from '../helpers/http.ts'
import { type ManualClock, manualClock } from '../helpers/manual-clock.ts'
import { quietDeps } from '../helpers/silent.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

let dir: ReturnType<typeof tempDir>
let store: TaskStore
let app: ReturnType<typeof createDatabaseApp>
let removal: Removal
let clock: number
/** The claim waits' timers (getNewTask?wait=S). */
let timers: ManualClock
let claimWaits: ClaimWaits
beforeEach(() => {
  dir = tempDir()
  clock = Date.UTC(2026, 0, 1)
  store = openSqliteTaskStore(join(dir.path, 'database'), { leaseSeconds: 60, maxAttempts: 2, now: () => clock })
  // No storage here: removals find no images (the whole path is tested with storage in the stack's tests).
  removal = createRemoval({ store, images: { remove: async () => {} }, log: silentLogger, retentionSeconds: 0, now: () => clock })
  timers = manualClock()
  claimWaits = createDatabaseClaimWaits(store, timers)
  app = createDatabaseApp({ store, removal, claimWaits, ...quietDeps('database') })
})
afterEach(async () => {
  await store.close()
  dir.remove()
})

/** The routes that take one task's id. */
const BY_ID = [
  ['GET', '/getById'],
  ['POST', '/finishTask'],
  ['POST', '/failTask'],
  ['POST', '/retryTask'],
] as const

const json = async (method: string, path: string, body?: string) => {
  const got = await call(app, method, path, body)
  return { ...got, body: got.status === 200 ? JSON.parse(got.text) : undefined }
}

describe('database: POST /newTask and GET /getById', () => {
  test('ids are 0, 1, ... as text; a task is JSON {id, state} plus its record', async () => {
    expect(await call(app, 'POST', '/newTask')).toMatchObject({ status: 200, text: '0' })
    expect(await call(app, 'POST', '/newTask')).toMatchObject({ status: 200, text: '1' })
    const { body } = await json('GET', '/getById?id=1')
    expect(body).toEqual({
      id: 1,
      state: 0,
      stateName: 'not-started',
      attempts: 0,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
    })
  })

  test.each(['abc', '1.5', '1abc', '0x1', '1e2', '', '01', '-1', '%201', '9007199254740993', '1&id=2', '..%2F..%2Fetc%2Fpasswd'])(
    'id=%p is 400 with an Error: body',
    async (id) => {
      await call(app, 'POST', '/newTask')
      for (const [method, path] of BY_ID) {
        const got = await call(app, method, `${path}?id=${id}`)
        expect(got.status).toBe(400)
        expect(got.text).toStartWith('Error:')
      }
    },
  )

  test('an unknown id is 404 with an Error: body', async () => {
    for (const [method, path] of BY_ID) {
      const got = await call(app, method, `${path}?id=987654`)
      expect(got.status).toBe(404)
      expect(got.text).toBe('Error: No task with id 987654.')
    }
  })
})

describe('database: POST /getNewTask', () => {
  test('hands out the oldest not-started task in state 1 with a lease and a token, then `Error: No non-started task.`', async () => {
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', '/newTask')
    const first = await json('POST', '/getNewTask')
    expect(first.body).toMatchObject({ id: 0, state: 1, leaseExpiresAt: '2026-01-01T00:01:00.000Z' })
    expect(first.body.leaseToken).toBeString()
    expect((await json('POST', '/getNewTask')).body.id).toBe(1)
    const none = await call(app, 'POST', '/getNewTask')
    expect(none).toMatchObject({ status: 404, text: 'Error: No non-started task.' })
  })

  test('200 concurrent callers over 100 tasks: each task handed out once, oldest first', async () => {
    for (let i = 0; i < 100; i++) await call(app, 'POST', '/newTask')
    const answers = await Promise.all(Array.from({ length: 200 }, () => call(app, 'POST', '/getNewTask')))
    const ids = answers.filter((a) => a.status === 200).map((a) => JSON.parse(a.text).id as number)
    expect(ids.length).toBe(100)
    expect(new Set(ids).size).toBe(100)
    expect(answers.filter((a) => a.status === 404).every((a) => a.text === 'Error: No non-started task.')).toBe(true)
  })

  test('a task whose lease ran out is handed out again, and a late finish with the old token is refused', async () => {
    await call(app, 'POST', '/newTask')
    const first = (await json('POST', '/getNewTask')).body
    clock += 60_001
    const second = (await json('POST', '/getNewTask')).body
    expect(second).toMatchObject({ id: 0, attempts: 1 })
    const late = await call(app, 'POST', `/finishTask?id=0&lease=${first.leaseToken}`)
    expect(late.status).toBe(409)
    expect(late.text).toStartWith('Error:')
    expect(await call(app, 'POST', `/finishTask?id=0&lease=${second.leaseToken}`)).toMatchObject({ status: 200, text: 'success' })
  })
})

describe('database: POST /finishTask', () => {
  test('only a task in state 1; finishing twice or a state-0 task is 409 and changes nothing', async () => {
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', '/getNewTask')
    expect(await call(app, 'POST', '/finishTask?id=0')).toMatchObject({ status: 200, text: 'success' })
    expect((await json('GET', '/getById?id=0')).body.state).toBe(2)
    expect(await call(app, 'POST', '/finishTask?id=0')).toMatchObject({ status: 409, text: 'Error: Cannot finish task 0: it is already finished.' })
    expect((await call(app, 'POST', '/finishTask?id=1')).status).toBe(409)
    expect((await json('GET', '/getById?id=1')).body.state).toBe(0)
  })
})

describe('database: POST /setById', () => {
  test('sets state 0, 1 or 2 from a JSON task, with or without a JSON content type', async () => {
    await call(app, 'POST', '/newTask')
    expect(await call(app, 'POST', '/setById', '{"id": 0, "state": 2}')).toMatchObject({ status: 200, text: 'success' })
    expect((await json('GET', '/getById?id=0')).body.state).toBe(2)
    const typed = await call(app, 'POST', '/setById', '{"id":0,"state":0}', { 'content-type': 'application/json' })
    expect(typed).toMatchObject({ status: 200, text: 'success' })
    expect((await json('GET', '/getById?id=0')).body.state).toBe(0)
  })

  test.each([
    ['state 7', '{"id": 0, "state": 7}', 400],
    ['state -1', '{"id": 0, "state": -1}', 400],
    ['state 3 (only /failTask fails a task)', '{"id": 0, "state": 3}', 400],
    ['id as text', '{"id": "x", "state": 0}', 400],
    ['a fractional id', '{"id": 0.5, "state": 0}', 400],
    ['not JSON', 'id=1&state=0', 400],
    ['an empty body', '', 400],
    ['a JSON array', '[0, 1]', 400],
    ['an unknown id', '{"id": 987654, "state": 0}', 404],
  ])('%s is refused with an Error: body and changes nothing', async (_what, body, status) => {
    await call(app, 'POST', '/newTask')
    const got = await call(app, 'POST', '/setById', body)
    expect(got.status).toBe(status)
    expect(got.text).toStartWith('Error:')
    expect((await json('GET', '/getById?id=0')).body.state).toBe(0)
  })
})

describe('database: GET /list', () => {
  test('one JSON line per task, oldest first', async () => {
    for (let i = 0; i < 3; i++) await call(app, 'POST', '/newTask')
    const lines = (await call(app, 'GET', '/list')).text.trim().split('\n')
    expect(lines.map((line) => JSON.parse(line).id)).toEqual([0, 1, 2])
  })
})

describe('database: POST /failTask and /retryTask', () => {
  test('a failure puts the task back; at PIXMILL_MAX_ATTEMPTS it is failed (3) with its reason, then retry clears it', async () => {
    await call(app, 'POST', '/newTask')
    expect((await call(app, 'POST', '/failTask?id=0')).status).toBe(409)
    await call(app, 'POST', '/getNewTask')
    expect(await call(app, 'POST', '/failTask?id=0&error=first')).toMatchObject({ status: 200, text: 'success' })
    expect((await json('GET', '/getById?id=0')).body).toMatchObject({ state: 0, attempts: 1, error: 'first' })
    await call(app, 'POST', '/getNewTask')
    await call(app, 'POST', '/failTask?id=0&error=cannot%20decode')
    expect((await json('GET', '/getById?id=0')).body).toMatchObject({ state: 3, stateName: 'failed', attempts: 2, error: 'cannot decode' })
    expect(await call(app, 'POST', '/getNewTask')).toMatchObject({ status: 404 })
    expect((await call(app, 'POST', '/failTask?id=0')).status).toBe(409)
    expect(await call(app, 'POST', '/retryTask?id=0')).toMatchObject({ status: 200, text: 'success' })
    expect((await json('GET', '/getById?id=0')).body).toMatchObject({ state: 0, attempts: 0 })
    expect((await call(app, 'POST', '/retryTask?id=0')).status).toBe(409)
  })
})

describe('database: held tasks (/reserveTask, /activateTask, /dropTask)', () => {
  test('a reserved task is not handed out until activated; a dropped one is gone; /newTask still claimable at once', async () => {
    expect((await call(app, 'POST', '/reserveTask')).text).toBe('0')
    expect((await call(app, 'POST', '/reserveTask')).text).toBe('1')
    // Until its image is stored, a reserved id is no task at all: no read shows it.
    expect((await call(app, 'GET', '/getById?id=0')).status).toBe(404)
    expect((await call(app, 'GET', '/list')).text).toBe('')
    expect((await json('GET', '/tasks')).body).toEqual([])
    expect((await json('GET', '/counts')).body).toEqual({ 'not-started': 0, 'in-progress': 0, finished: 0, failed: 0 })
    expect((await call(app, 'POST', '/getNewTask')).status).toBe(404)
    expect(await call(app, 'POST', '/activateTask?id=0')).toMatchObject({ status: 200, text: 'success' })
    expect(await call(app, 'POST', '/dropTask?id=1')).toMatchObject({ status: 200, text: 'success' })
    expect((await call(app, 'GET', '/getById?id=1')).status).toBe(404)
    expect((await call(app, 'POST', '/dropTask?id=0')).status).toBe(409)
    expect((await json('POST', '/getNewTask')).body.id).toBe(0)
    expect((await call(app, 'POST', '/newTask')).text).toBe('2')
    expect(
      (await call(app, 'GET', '/list')).text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).id),
    ).toEqual([0, 2])
  })
})

describe('database: the upload’s trace context', () => {
  test('the traceparent of /reserveTask or /newTask is kept and handed to the worker with the claim; a malformed one is not', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    await call(app, 'POST', '/reserveTask', null, { traceparent })
    await call(app, 'POST', '/activateTask?id=0')
    await call(app, 'POST', '/newTask', null, { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7' })
    await call(app, 'POST', '/newTask', null, { traceparent: '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' })
    expect((await json('POST', '/getNewTask')).body).toMatchObject({ id: 0, traceparent })
    for (const id of [1, 2]) {
      const claim = (await json('POST', '/getNewTask')).body
      expect(claim.id).toBe(id)
      expect(claim).not.toHaveProperty('traceparent')
    }
  })
})

describe('database: a lease that ran out, on every read', () => {
  test('/getById, /list, /tasks, /counts and the task gauge show the task back at 0 at once, with no claim since', async () => {
    await call(app, 'POST', '/newTask')
    await json('POST', '/getNewTask')
    expect((await json('GET', '/getById?id=0')).body.state).toBe(1)
    clock += 60_001
    expect((await json('GET', '/getById?id=0')).body).toMatchObject({ state: 0, attempts: 1, error: 'the lease ran out before the task was finished' })
    expect(JSON.parse((await call(app, 'GET', '/list')).text)).toMatchObject({ id: 0, state: 0 })
    expect((await json('GET', '/tasks?state=1')).body).toEqual([])
    expect((await json('GET', '/counts')).body).toMatchObject({ 'not-started': 1, 'in-progress': 0 })
    const metrics = (await call(app, 'GET', '/metrics')).text
    expect(metrics).toMatch(/^pixmill_tasks\{state="in_progress",[^}]*\} 0$/m)
    expect(metrics).toMatch(/^pixmill_task_events_total\{event="lease_expired",[^}]*\} 1$/m)
  })
})

describe('database: POST /renewTask', () => {
  test('extends the lease of the current claim only', async () => {
    await call(app, 'POST', '/newTask')
    const claim = (await json('POST', '/getNewTask')).body
    clock += 30_000
    const renewed = await json('POST', `/renewTask?id=0&lease=${claim.leaseToken}`)
    expect(renewed.body.leaseExpiresAt).toBe(new Date(clock + 60_000).toISOString())
    expect((await call(app, 'POST', '/renewTask?id=0&lease=other')).status).toBe(409)
    expect((await call(app, 'POST', '/renewTask?id=0')).status).toBe(400)
  })
})

describe('database: wrong methods', () => {
  test.each([
    ['GET', '/newTask'],
    ['POST', '/getById'],
    ['GET', '/getNewTask'],
    ['GET', '/finishTask'],
    ['GET', '/setById'],
    ['GET', '/failTask'],
    ['DELETE', '/list'],
  ])('%s %s is 405 with Allow and an Error: body', async (method, path) => {
    const got = await call(app, method, `${path}?id=0`)
    expect(got.status).toBe(405)
    expect(got.headers.get('allow')).toBeString()
    expect(got.text).toStartWith('Error:')
  })
})

describe('database: metrics', () => {
  test('counts tasks per state and lifecycle events', async () => {
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', '/getNewTask')
    const text = (await call(app, 'GET', '/metrics')).text
    expect(text).toContain('pixmill_tasks{state="not_started",role="database"} 1')
    expect(text).toContain('pixmill_tasks{state="in_progress",role="database"} 1')
    expect(text).toContain('pixmill_task_events_total{event="created",role="database"} 2')
    expect(text).toContain('pixmill_task_events_total{event="claimed",role="database"} 1')
  })
})

describe('database: POST /getNewTask?wait=S', () => {
  test('a held claim is answered as soon as a task is created, activated or put back; bad waits are 400', async () => {
    const held = app.handle(new Request('http://localhost/getNewTask?wait=10', { method: 'POST' }))
    await waitFor('the claim to wait', () => claimWaits.size() === 1)
    await call(app, 'POST', '/newTask')
    const answer = await held
    expect(answer.status).toBe(200)
    expect(((await answer.json()) as { id: number }).id).toBe(0)
    // Put back by a failure: a waiting claim gets it again.
    const again = app.handle(new Request('http://localhost/getNewTask?wait=10', { method: 'POST' }))
    await waitFor('the claim to wait', () => claimWaits.size() === 1)
    await call(app, 'POST', '/failTask?id=0&error=x')
    expect(((await (await again).json()) as { id: number; attempts: number }).attempts).toBe(1)
    for (const bad of ['61', '-1', '1.5', 'x', '']) expect((await call(app, 'POST', `/getNewTask?wait=${bad}`)).status).toBe(400)
  })

  test('with nothing to claim it answers `No non-started task.` after S seconds; claims waiting are served in order', async () => {
    let answered = false
    const waiting = call(app, 'POST', '/getNewTask?wait=1').finally(() => (answered = true))
    await waitFor('the claim to wait', () => claimWaits.size() === 1)
    await timers.advance(999)
    expect(answered).toBe(false)
    await timers.advance(1)
    const none = await waiting
    expect(none.status).toBe(404)
    expect(none.text).toBe('Error: No non-started task.')
    const first = app.handle(new Request('http://localhost/getNewTask?wait=10', { method: 'POST' }))
    await waitFor('the first claim to wait', () => claimWaits.size() === 1)
    const second = app.handle(new Request('http://localhost/getNewTask?wait=10', { method: 'POST' }))
    await waitFor('the second claim to wait', () => claimWaits.size() === 2)
    await call(app, 'POST', '/newTask')
    await call(app, 'POST', '/newTask')
    expect([((await (await first).json()) as { id: number }).id, ((await (await second).json()) as { id: number }).id]).toEqual([0, 1])
  })

  test('a caller that goes away ends its wait, and a claim made as it went gives nothing away', async () => {
    const gone = new AbortController()
    const held = app.handle(new Request('http://localhost/getNewTask?wait=10', { method: 'POST', signal: gone.signal }))
    await waitFor('the claim to wait', () => claimWaits.size() === 1)
    gone.abort()
    await held.catch(() => undefined)
    await call(app, 'POST', '/newTask')
    // The task is still there for the next claim: nobody holds it.
    expect((await json('POST', '/getNewTask')).body.id).toBe(0)
    expect((await call(app, 'GET', '/metrics')).text).toMatch(/^pixmill_claims_waiting\{[^}]*\} 0$/m)
  })
})
