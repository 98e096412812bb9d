// The bad input of the reliability issue that the per-role route tests leave out: every bad id on every endpoint of
// every role, kv text that is not UTF-8, sizes at the upload limit, a decompression bomb, and broken JSON.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { deflateSync } from 'node:zlib'
import type { AnyElysia } from 'elysia'
import { createMasterWorkerClient } from '../../src/clients/master-client.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createStorageClient } from '../../src/clients/storage-client.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { createTaskWatch } from '../../src/roles/frontend/task-watch.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { MAX_KEY_LENGTH, MAX_VALUE_LENGTH } from '../../src/roles/kv/model.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { createWorker } from '../../src/roles/worker/worker.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { call } from '../helpers/http.ts'
import { chunk, concat, encodePng, ihdrChunk, signature } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { storedImages, tempFiles } from '../helpers/stored-files.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const LIMIT = 8192
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
let stack: ReturnType<typeof inProcessStack>
let frontend: ReturnType<typeof createFrontendApp>
let watch: ReturnType<typeof createTaskWatch>
beforeAll(() => {
  stack = inProcessStack({ maxUploadBytes: LIMIT })
  const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), (request) => stack.master.handle(request))
  watch = createTaskWatch({ status: (id) => master.status(id) })
  frontend = createFrontendApp({ master, maxUploadBytes: LIMIT, watch, ...quietDeps('frontend') })
})
afterAll(async () => {
  watch.close()
  await stack.close()
})

const tasks = async () => (await call(stack.database, 'GET', '/list')).text
const workingFiles = () => storedImages(join(stack.dir, 'storage')).filter((name) => name.startsWith('working/'))

describe('bad input: ids', () => {
  const BAD_IDS = ['-1', '1.5', '1e3', ' 1', '0x1', '01', String(2 ** 53 + 1), '', '../../etc/passwd', '%2e%2e%2f', '1%00', '%E2%80%8B1']
  /** Every endpoint that takes an id, with the rest of a valid query. */
  const ENDPOINTS: Array<[string, string, string, string]> = [
    ['master', 'GET', '/isReady', ''],
    ['master', 'GET', '/get', ''],
    ['master', 'GET', '/status', ''],
    ['master', 'GET', '/wait', '&timeout=1'],
    ['master', 'POST', '/registerTaskFinished', '&lease=x'],
    ['master', 'POST', '/registerTaskFailed', '&error=e'],
    ['master', 'POST', '/renewTask', '&lease=x'],
    ['master', 'POST', '/releaseTask', '&lease=x'],
    ['master', 'POST', '/retryTask', ''],
    ['master', 'POST', '/deleteTask', ''],
    ['master', 'GET', '/events', ''],
    ['database', 'GET', '/getById', ''],
    ['database', 'POST', '/finishTask', ''],
    ['database', 'POST', '/failTask', '&error=e'],
    ['database', 'POST', '/retryTask', ''],
    ['database', 'POST', '/releaseTask', ''],
    ['database', 'POST', '/renewTask', '&lease=x'],
    ['database', 'POST', '/activateTask', ''],
    ['database', 'POST', '/dropTask', ''],
    ['database', 'POST', '/deleteTask', ''],
    ['database', 'GET', '/events', ''],
    ['storage', 'GET', '/getImage', '&state=working'],
    ['storage', 'POST', '/sendImage', '&state=working'],
    ['storage', 'POST', '/deleteImage', '&state=working'],
    ['frontend', 'GET', '/isReady', ''],
    ['frontend', 'GET', '/getImage', ''],
    ['frontend', 'GET', '/task', ''],
    ['frontend', 'GET', '/api/status', ''],
    ['frontend', 'POST', '/api/retry', ''],
    ['frontend', 'POST', '/api/delete', ''],
  ]
  const app = (role: string): AnyElysia => (role === 'frontend' ? frontend : stack[role as 'master' | 'database' | 'storage'])

  test('the list below names every route whose query takes an id', () => {
    for (const role of ['master', 'database', 'storage', 'frontend']) {
      const withId = app(role)
        .routes.filter(
          (route) =>
            route.method !== 'ALL' &&
            (route.hooks as { query?: { properties?: object } }).query?.properties &&
            'id' in (route.hooks as { query: { properties: object } }).query.properties,
        )
        .map((route) => `${route.method} ${route.path}`)
      expect(withId.sort()).toEqual(
        ENDPOINTS.filter(([r]) => r === role)
          .map(([, method, path]) => `${method} ${path}`)
          .sort(),
      )
    }
  })

  test.each(BAD_IDS.map((id) => [id]))('id=%p is 400 with an Error: body on every endpoint of every role, and changes nothing', async (id) => {
    await call(stack.master, 'POST', '/new', PNG)
    await call(stack.master, 'POST', '/getNewTask')
    const [before, files] = [await tasks(), workingFiles()]
    for (const query of [`id=${id}`, 'id=1&id=1', `id=0&id=${id}`, '']) {
      for (const [role, method, path, rest] of ENDPOINTS) {
        const got = await call(app(role), method, `${path}?${query}${rest}`, method === 'POST' && role === 'storage' ? PNG : null)
        expect({ role, method, path, query, status: got.status, error: got.text.startsWith('Error:') }).toEqual({
          role,
          method,
          path,
          query,
          status: 400,
          error: true,
        })
      }
    }
    expect(await tasks()).toBe(before)
    expect(workingFiles()).toEqual(files)
  })
})

describe('bad input: kv keys and values', () => {
  const dir = tempDir()
  const store = openSqliteKvStore(join(dir.path, 'kv'))
  const kv = createKvApp({ store, ...quietDeps('kv') })
  afterAll(async () => {
    await store.close()
    dir.remove()
  })
  afterEach(async () => {
    for (const [key] of await store.list()) await store.remove(key)
  })

  test.each([
    ['a value that is not UTF-8', 'POST', '/set?key=k&value=%FF'],
    ['a key that is not UTF-8', 'POST', '/set?key=%C3%28&value=v'],
    ['an overlong UTF-8 slash in the key', 'POST', '/set?key=a%C0%AFb&value=v'],
    ['a lone surrogate in the value', 'POST', '/set?key=k&value=%ED%A0%80'],
    ['a remove of a key that is not UTF-8', 'DELETE', '/remove?key=%80'],
    ['a remove of an empty key', 'DELETE', '/remove?key='],
  ])('%s is 400 with an Error: body and stores nothing', async (_what, method, path) => {
    const got = await call(kv, method, path)
    expect(got.status).toBe(400)
    expect(got.text).toStartWith('Error:')
    expect(await store.list()).toEqual([])
  })

  test('a key and a value exactly at their limits, in any script, round-trip byte for byte', async () => {
    const key = 'ключ'.repeat(MAX_KEY_LENGTH / 4)
    const value = '值'.repeat(MAX_VALUE_LENGTH)
    expect((await call(kv, 'POST', `/set?key=${encodeURIComponent(key)}&value=${encodeURIComponent(value)}`)).text).toBe('success')
    expect((await call(kv, 'GET', `/get?key=${encodeURIComponent(key)}`)).text).toBe(value)
  })
})

describe('bad input: sizes at PIXMILL_MAX_UPLOAD_BYTES', () => {
  const sized = (n: number) => concat([PNG, new Uint8Array(n - PNG.length)])
  const chunked = (bytes: Uint8Array) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 4096) controller.enqueue(bytes.subarray(i, i + 4096))
        controller.close()
      },
    })
  const form = (bytes: Uint8Array) => {
    const data = new FormData()
    data.append('uploadfile', new Blob([bytes as Uint8Array<ArrayBuffer>]), 'a.png')
    return data
  }

  test.each([
    ['exactly the limit', LIMIT, 200],
    ['one byte over', LIMIT + 1, 413],
    ['64 times over', LIMIT * 64, 413],
  ])('%s: master, storage and frontend all answer %d, announced or chunked', async (_what, size, status) => {
    const before = await tasks()
    const bytes = sized(size)
    const answers = [
      await call(stack.master, 'POST', '/new', bytes),
      await call(stack.master, 'POST', '/new', chunked(bytes)),
      await call(stack.storage, 'POST', '/sendImage?id=777&state=finished', bytes),
      await call(stack.storage, 'POST', '/sendImage?id=778&state=finished', chunked(bytes)),
      await call(frontend, 'POST', '/submitTask', form(bytes)),
    ]
    expect(answers.map((a) => a.status)).toEqual([status, status, status, status, status])
    if (status === 200) return
    for (const answer of answers) expect(answer.text).toStartWith('Error:')
    expect(await tasks()).toBe(before)
    expect(tempFiles(join(stack.dir, 'storage'))).toEqual([])
  })
})

describe('bad input: a decompression bomb', () => {
  test('a few hundred bytes declaring 100000x100000 are accepted at upload, then a worker fails the task from its header', async () => {
    const bomb = concat([signature(), ihdrChunk(100_000, 100_000, 1, 0), chunk('IDAT', deflateSync(new Uint8Array(64))), chunk('IEND', new Uint8Array(0))])
    expect(bomb.length).toBeLessThan(300)
    const upload = await call(stack.master, 'POST', '/new', bomb)
    expect(upload.status).toBe(200)
    const id = Number(upload.text)
    const inProcess = (app: AnyElysia) => (request: Request) => app.handle(request)
    const worker = createWorker({
      master: createMasterWorkerClient(fixedPeer('masterAddress', 'master.local'), inProcess(stack.master)),
      storage: createStorageClient(fixedPeer('storageAddress', 'storage.local'), inProcess(stack.storage)),
      threads: 1,
      maxPixels: 50_000_000,
      leaseSeconds: 60,
      log: silentLogger,
    })
    worker.start()
    try {
      const status = await waitFor('the bomb to fail', async () => {
        const status = JSON.parse((await call(stack.master, 'GET', `/status?id=${id}`)).text)
        return status.state === 3 && status
      })
      // maxAttempts is 2 in the stack: the bomb is tried twice, and refused from its header both times.
      expect(status).toMatchObject({ attempts: 2, error: expect.stringContaining('100000x100000 pixels, more than the limit of 50000000') })
    } finally {
      await worker.close()
    }
    // The other tasks in the queue were sound PNGs and were processed; only the bomb failed, twice.
    expect(worker.stats().failed).toBe(2)
  })
})

describe('bad input: JSON to database POST /setById', () => {
  test.each([
    ['truncated JSON', '{"id": 0, "state":'],
    ['numbers as text', '{"id": "0", "state": "2"}'],
    ['null', 'null'],
    ['a bare number', '2'],
    ['a missing state', '{"id": 0}'],
    ['an id past 2^53', '{"id": 9007199254740993, "state": 2}'],
    ['an id of 1e400', '{"id": 1e400, "state": 2}'],
    ['a state of true', '{"id": 0, "state": true}'],
    ['bytes that are not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])],
    ['a very deep nesting', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
    ['a body of 1 MiB of spaces', `${' '.repeat(1 << 20)}{"id": 0, "state": 2`],
  ])('%s is 400 with an Error: body and changes nothing', async (_what, body) => {
    await call(stack.database, 'POST', '/newTask')
    const before = await tasks()
    const got = await call(stack.database, 'POST', '/setById', body as BodyInit, { 'content-type': 'application/json' })
    expect(got.status).toBe(400)
    expect(got.text).toStartWith('Error:')
    expect(await tasks()).toBe(before)
  })
})
