// The shared token on internal endpoints, request ids on every answer, and upload back-pressure and deadlines.

import { Database } from 'bun:sqlite'
import { afterEach, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import pino from 'pino'
import { bearerMatches } from '../../src/plugins/auth.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { call } from '../helpers/http.ts'
import { encodePng } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const TOKEN = 'a-shared-secret-of-some-length'
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
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

function kvWithToken(token?: string) {
  const dir = tempDir()
  const store = openSqliteKvStore(join(dir.path, 'kv'))
  cleanups.push(async () => {
    await store.close()
    dir.remove()
  })
  return createKvApp({ store, token, ...quietDeps('kv') })
}

describe('security: PIXMILL_TOKEN', () => {
  test('with a token, kv /set and /remove want it; /get, /list, /health stay open', async () => {
    const app = kvWithToken(TOKEN)
    const refused = await call(app, 'POST', '/set?key=masterAddress&value=evil%3A1')
    expect(refused.status).toBe(401)
    expect(refused.text).toStartWith('Error:')
    expect(refused.headers.get('www-authenticate')).toContain('Bearer')
    expect((await call(app, 'POST', '/set?key=masterAddress&value=evil%3A1', null, { authorization: 'Bearer wrong-token-of-same-size!!' })).status).toBe(401)
    expect((await call(app, 'DELETE', '/remove?key=k')).status).toBe(401)
    expect(await call(app, 'POST', '/set?key=masterAddress&value=good%3A1', null, { authorization: `Bearer ${TOKEN}` })).toMatchObject({
      status: 200,
      text: 'success',
    })
    expect(await call(app, 'GET', '/get?key=masterAddress')).toMatchObject({ status: 200, text: 'good:1' })
    expect((await call(app, 'GET', '/list')).status).toBe(200)
    expect((await call(app, 'GET', '/health')).status).toBe(200)
  })

  test('the token is checked before the input: no validation detail leaks to a caller without it', async () => {
    const app = kvWithToken(TOKEN)
    expect((await call(app, 'POST', '/set?key=')).status).toBe(401)
  })

  test('without a token everything stays open, as in the original protocol', async () => {
    const app = kvWithToken(undefined)
    expect(await call(app, 'POST', '/set?key=k&value=v')).toMatchObject({ status: 200, text: 'success' })
  })

  test('on the master, the worker API is internal and the client API open', async () => {
    const stack = inProcessStack({ token: TOKEN })
    cleanups.push(() => stack.close())
    const upload = await call(stack.master, 'POST', '/new', PNG)
    expect(upload.status).toBe(200)
    expect((await call(stack.master, 'GET', `/status?id=${upload.text}`)).status).toBe(200)
    for (const path of [
      '/getNewTask',
      '/registerTaskFinished?id=0',
      '/registerTaskFailed?id=0',
      '/renewTask?id=0&lease=x',
      '/releaseTask?id=0',
      '/retryTask?id=0',
    ]) {
      expect((await call(stack.master, 'POST', path)).status).toBe(401)
    }
    const claim = await call(stack.master, 'POST', '/getNewTask', null, { authorization: `Bearer ${TOKEN}` })
    expect(claim.status).toBe(200)
  })

  test('bearerMatches compares whole tokens only', () => {
    const expected = createHash('sha256').update(TOKEN).digest()
    expect(bearerMatches(`Bearer ${TOKEN}`, expected)).toBe(true)
    expect(bearerMatches(`Bearer ${TOKEN}x`, expected)).toBe(false)
    expect(bearerMatches(`Bearer ${TOKEN.slice(0, -1)}`, expected)).toBe(false)
    expect(bearerMatches(TOKEN, expected)).toBe(false)
    expect(bearerMatches(null, expected)).toBe(false)
  })
})

describe('security: request ids', () => {
  test('an answer carries the caller’s X-Request-Id when it is plain, a new one otherwise', async () => {
    const app = kvWithToken(undefined)
    expect((await call(app, 'GET', '/list', null, { 'x-request-id': 'trace-123' })).headers.get('x-request-id')).toBe('trace-123')
    expect((await call(app, 'GET', '/get?key=none', null, { 'x-request-id': 'trace-404' })).headers.get('x-request-id')).toBe('trace-404')
    const fresh = (await call(app, 'GET', '/list', null, { 'x-request-id': 'bad id with spaces' })).headers.get('x-request-id')
    expect(fresh).toMatch(/^[0-9a-f-]{36}$/)
  })

  test('kv and the database answer an id only when the caller sent one (their reads stay cheap), the master for every write; every error gets one', async () => {
    const app = kvWithToken(undefined)
    await call(app, 'POST', '/set?key=a&value=1')
    const plain = await call(app, 'GET', '/get?key=a')
    expect(plain.status).toBe(200)
    expect(plain.headers.get('x-request-id')).toBeNull()
    const missing = await call(app, 'GET', '/get?key=none')
    expect(missing.status).toBe(404)
    expect(missing.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    // The master gives every upload and worker call an id at the edge, a read only when asked with one; the database
    // keeps the id a caller sends (every role sends one), and makes none for a bare read.
    const stack = inProcessStack()
    cleanups.push(() => stack.close())
    expect((await call(stack.master, 'GET', '/counts')).headers.get('x-request-id')).toBeNull()
    expect((await call(stack.master, 'GET', '/counts', null, { 'x-request-id': 'poll-7' })).headers.get('x-request-id')).toBe('poll-7')
    expect((await call(stack.master, 'POST', '/getNewTask')).headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    expect((await call(stack.database, 'GET', '/counts')).headers.get('x-request-id')).toBeNull()
    expect((await call(stack.database, 'GET', '/counts', null, { 'x-request-id': 'from-master' })).headers.get('x-request-id')).toBe('from-master')
  })

  test('kv, which does not carry ids into its async work, still answers and logs an unexpected error under the id', async () => {
    const lines: string[] = []
    const log = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) })
    const dir = tempDir()
    const store = openSqliteKvStore(join(dir.path, 'kv'))
    cleanups.push(async () => {
      await store.close()
      dir.remove()
    })
    const broken = { ...store, get: async () => Promise.reject(new Error('disk on fire')) }
    const app = createKvApp({ ...quietDeps('kv'), store: broken, log })
    const got = await call(app, 'GET', '/get?key=a', null, { 'x-request-id': 'kv-500' })
    expect(got.status).toBe(500)
    expect(got.headers.get('x-request-id')).toBe('kv-500')
    expect(got.text).toBe('Error: Internal error; it has been logged with request id kv-500.')
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({ requestId: 'kv-500', msg: 'unexpected error', err: { message: 'disk on fire' } })
  })

  test('the upload’s request id is kept on its task and handed to the worker with the claim', async () => {
    const stack = inProcessStack()
    cleanups.push(() => stack.close())
    const upload = await call(stack.master, 'POST', '/new', PNG, { 'x-request-id': 'upload-7' })
    expect(upload.status).toBe(200)
    const claim = JSON.parse((await call(stack.master, 'POST', '/getNewTask')).text)
    expect(claim.requestId).toBe('upload-7')
  })

  test('an unexpected error is a 5xx naming the request id, carried across roles, with no stack trace', async () => {
    const stack = inProcessStack()
    cleanups.push(() => stack.close())
    // Break the database behind the store's back, as a damaged file would.
    const raw = new Database(join(stack.dir, 'database', 'tasks.sqlite'))
    raw.exec('DROP TABLE tasks')
    raw.close()
    const got = await call(stack.master, 'GET', '/status?id=0', null, { 'x-request-id': 'broken-1' })
    expect(got.status).toBe(502)
    expect(got.text).toStartWith('Error:')
    expect(got.text).toContain('request id broken-1')
    expect(got.text).not.toMatch(/no such table| at .*\.ts:\d+/)
  })
})

describe('back-pressure and deadlines on uploads', () => {
  test('past PIXMILL_MAX_UPLOADS_IN_FLIGHT an upload gets 503 with Retry-After; the one in flight still lands', async () => {
    const stack = inProcessStack({ maxUploadsInFlight: 1 })
    cleanups.push(() => stack.close())
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let pulls = 0
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        // The first pull fills the stream's queue; a second means the master is reading the body, its slot taken.
        if (++pulls === 1) return controller.enqueue(PNG.subarray(0, 40))
        await held
        controller.enqueue(PNG.subarray(40))
        controller.close()
      },
    })
    const first = call(stack.master, 'POST', '/new', slow)
    await waitFor('the first upload to be read', () => pulls >= 2)
    const second = await call(stack.master, 'POST', '/new', PNG)
    expect(second.status).toBe(503)
    expect(second.headers.get('retry-after')).toBe('1')
    expect(second.text).toStartWith('Error:')
    release()
    expect((await first).status).toBe(200)
    expect((await call(stack.master, 'POST', '/new', PNG)).status).toBe(200)
  })

  test('a body that stalls past PIXMILL_UPLOAD_TIMEOUT_SECONDS gets 408 and leaves no task', async () => {
    const stack = inProcessStack({ uploadTimeoutSeconds: 1 })
    cleanups.push(() => stack.close())
    const stalled = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(PNG.subarray(0, 40))
      },
    })
    const got = await call(stack.master, 'POST', '/new', stalled)
    expect(got.status).toBe(408)
    expect(got.text).toStartWith('Error:')
    expect((await call(stack.database, 'GET', '/list')).text).toBe('')
  })
})
