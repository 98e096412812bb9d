// master routes through app.handle, over real in-process database and storage apps.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import type { HttpError } from '../../src/shared/errors.ts'
import { checkPngHead, PNG_HEADER_BYTES, PNG_SIGNATURE } from '../../src/shared/png-header.ts'
import { PNG_SIZE_HEADER } from '../../src/shared/wire/headers.ts'
import { call, ORIGIN } from '../helpers/http.ts'
import { encodePng } from '../helpers/png.ts'
import { inProcessStack, stackPool } from '../helpers/stack.ts'
import { storedImages } from '../helpers/stored-files.ts'
import { waitFor } from '../helpers/wait-for.ts'

let stack: ReturnType<typeof inProcessStack>
beforeEach(() => {
  stack = inProcessStack({ maxUploadBytes: 64 * 1024 })
})
afterEach(() => stack.close())

const rows = (f: (x: number, y: number) => number[]) => Array.from({ length: 2 }, (_, y) => Array.from({ length: 3 }, (_, x) => f(x, y)))
const PNG = encodePng(
  3,
  2,
  6,
  8,
  rows((x, y) => [x * 40, 255 - y * 40, 7, 255]),
)
const RESULT = encodePng(
  3,
  2,
  6,
  8,
  rows(() => [1, 2, 3, 255]),
)

const post = (path: string, body?: BodyInit) => call(stack.master, 'POST', path, body, body ? { 'content-type': 'image/png' } : undefined)
const get = (path: string) => call(stack.master, 'GET', path)

async function upload(body: BodyInit = PNG): Promise<number> {
  const got = await post('/new', body)
  expect(got.status).toBe(200)
  return Number(got.text)
}

describe('master: POST /new', () => {
  test('answers consecutive ids as text and stores each image as `working`, byte for byte', async () => {
    expect(await upload()).toBe(0)
    expect(await upload(RESULT)).toBe(1)
    const stored = await call(stack.storage, 'GET', '/getImage?id=1&state=working')
    expect(Buffer.from(stored.text, 'latin1').length).toBeGreaterThan(0)
    const bytes = new Uint8Array(await (await stack.storage.handle(new Request('http://localhost/getImage?id=0&state=working'))).arrayBuffer())
    expect(bytes).toEqual(PNG)
    expect((await get('/status?id=0')).text).toContain('"state":0')
  })

  test('streams a chunked body of unknown length through to storage', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(PNG.subarray(0, 5))
        controller.enqueue(PNG.subarray(5, 40))
        controller.enqueue(PNG.subarray(40))
        controller.close()
      },
    })
    const id = await upload(stream)
    const bytes = new Uint8Array(await (await stack.storage.handle(new Request(`http://localhost/getImage?id=${id}&state=working`))).arrayBuffer())
    expect(bytes).toEqual(PNG)
  })

  test.each([
    ['an empty body', new Uint8Array(0), 400],
    ['a text body', new TextEncoder().encode('hello, this is not an image at all'), 415],
    ['the signature then garbage', new Uint8Array([...PNG_SIGNATURE, ...new Uint8Array(40).fill(7)]), 400],
    ['a PNG cut inside its header', PNG.subarray(0, 20), 400],
    [
      'a header with a bad CRC',
      (() => {
        const b = PNG.slice()
        b[29] = (b[29]! + 1) % 256
        return b
      })(),
      400,
    ],
    ['a body over PIXMILL_MAX_UPLOAD_BYTES', new Uint8Array([...PNG, ...new Uint8Array(64 * 1024)]), 413],
  ])('refuses %s with %d and an Error: body, leaving no task and no image', async (_what, body, status) => {
    const got = await post('/new', body)
    expect(got.status).toBe(status)
    expect(got.text).toStartWith('Error:')
    expect((await call(stack.database, 'GET', '/list')).text).toBe('')
    expect(storedImages(join(stack.dir, 'storage'))).toEqual([])
  })

  test('a chunked body that passes the limit midway is refused with 413 and its held task dropped', async () => {
    const big = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(PNG)
        for (let i = 0; i < 10; i++) controller.enqueue(new Uint8Array(16 * 1024))
        controller.close()
      },
    })
    const got = await post('/new', big)
    expect(got.status).toBe(413)
    expect(got.text).toStartWith('Error:')
    expect((await call(stack.database, 'GET', '/list')).text).toBe('')
  })

  test('storage down: the client gets a 5xx and no task can ever be handed out', async () => {
    stack.setStorageUp(false)
    const got = await post('/new', PNG)
    expect(got.status).toBeGreaterThanOrEqual(500)
    expect(got.text).toStartWith('Error:')
    stack.setStorageUp(true)
    expect((await post('/getNewTask')).status).toBe(404)
    expect((await call(stack.database, 'GET', '/list')).text).toBe('')
  })
})

describe('master: the worker API and the client polling it', () => {
  test('claim, store the result, finish: /isReady turns 1 and /get serves the finished PNG', async () => {
    const id = await upload()
    expect((await get(`/isReady?id=${id}`)).text).toBe('0')
    expect((await get(`/get?id=${id}`)).status).toBe(404)
    const claim = JSON.parse((await post('/getNewTask')).text)
    expect(claim).toMatchObject({ id, state: 1 })
    expect(claim.leaseToken).toBeString()
    await stack.storage.handle(new Request(`http://localhost/sendImage?id=${id}&state=finished`, { method: 'POST', body: RESULT }))
    expect((await post(`/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`)).text).toBe('success')
    expect((await get(`/isReady?id=${id}`)).text).toBe('1')
    const response = await stack.master.handle(new Request(`http://localhost/get?id=${id}`))
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('image/png')
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(RESULT)
    const etag = response.headers.get('etag')!
    const again = await stack.master.handle(new Request(`http://localhost/get?id=${id}`, { headers: { 'if-none-match': etag } }))
    expect(again.status).toBe(304)
  })

  test('no task left: `Error: No non-started task.`', async () => {
    expect(await post('/getNewTask')).toMatchObject({ status: 404, text: 'Error: No non-started task.' })
  })

  test('failures: /registerTaskFailed twice (max 2) ends in state 3 with the reason; /isReady 0; /retryTask brings it back', async () => {
    const id = await upload()
    await post('/getNewTask')
    expect((await post(`/registerTaskFailed?id=${id}&error=cannot%20decode`)).text).toBe('success')
    expect(JSON.parse((await get(`/status?id=${id}`)).text)).toMatchObject({ state: 0, attempts: 1 })
    await post('/getNewTask')
    await post(`/registerTaskFailed?id=${id}&error=cannot%20decode`)
    const status = JSON.parse((await get(`/status?id=${id}`)).text)
    expect(status).toMatchObject({ id, state: 3, stateName: 'failed', attempts: 2, error: 'cannot decode' })
    expect(status).not.toHaveProperty('leaseToken')
    expect((await get(`/isReady?id=${id}`)).text).toBe('0')
    expect((await get(`/get?id=${id}`)).status).toBe(404)
    expect((await post(`/retryTask?id=${id}`)).text).toBe('success')
    expect((await post(`/retryTask?id=${id}`)).status).toBe(409)
  })

  test('/tasks and /counts give the status board its figures', async () => {
    await upload()
    await upload()
    await post('/getNewTask')
    expect(JSON.parse((await get('/counts')).text)).toEqual({ 'not-started': 1, 'in-progress': 1, finished: 0, failed: 0 })
    expect(JSON.parse((await get('/tasks?limit=1')).text).map((t: { id: number }) => t.id)).toEqual([1])
    expect(JSON.parse((await get('/tasks?state=1')).text).map((t: { id: number }) => t.id)).toEqual([0])
    expect((await get('/tasks?limit=500')).status).toBe(400)
  })
})

describe('master: bad ids and wrong methods', () => {
  test.each(['abc', '1.5', '1abc', '0x1', '1e2', '', '01', '-1', '%201', '9007199254740993', '1&id=1', '..%2F..%2Fetc%2Fpasswd', '%2e%2e%2f'])(
    'id=%p is 400 with an Error: body everywhere',
    async (id) => {
      for (const [method, path] of [
        ['GET', '/isReady'],
        ['GET', '/get'],
        ['GET', '/status'],
        ['POST', '/registerTaskFinished'],
        ['POST', '/registerTaskFailed'],
        ['POST', '/retryTask'],
      ] as const) {
        const got = await call(stack.master, method, `${path}?id=${id}`)
        expect(got.status).toBe(400)
        expect(got.text).toStartWith('Error:')
      }
    },
  )

  test('unknown ids are 404; finishing a task not in progress is 409', async () => {
    for (const path of ['/isReady', '/get', '/status']) expect((await get(`${path}?id=987654`)).status).toBe(404)
    expect((await post('/registerTaskFinished?id=987654')).status).toBe(404)
    const id = await upload()
    const got = await post(`/registerTaskFinished?id=${id}`)
    expect(got.status).toBe(409)
    expect(got.text).toStartWith('Error:')
  })

  test.each([
    ['GET', '/new'],
    ['POST', '/isReady'],
    ['POST', '/get'],
    ['GET', '/getNewTask'],
    ['GET', '/registerTaskFinished'],
    ['GET', '/registerTaskFailed'],
    ['GET', '/retryTask'],
  ])('%s %s is 405 with Allow', async (method, path) => {
    const got = await call(stack.master, method, `${path}?id=0`)
    expect(got.status).toBe(405)
    expect(got.headers.get('allow')).toBeString()
    expect(got.text).toStartWith('Error:')
  })
})

describe('master: Swagger page', () => {
  test('declares the upload as a raw image/png body, so the page offers a file picker', async () => {
    const spec = JSON.parse((await get('/swagger/json')).text)
    expect(spec.paths['/new'].post.requestBody.content['image/png'].schema).toEqual({ type: 'string', format: 'binary' })
    expect(spec.paths['/get'].get.responses['200'].content).toHaveProperty('image/png')
  })
})

describe('master: GET /isReady under many polls', () => {
  test('polls of an unfinished task ask the database once a moment; a task finished through this master reads 1 at once', async () => {
    const id = await upload()
    /** How many times the database answered /getById, from its own metrics. */
    const reads = async () =>
      Number(
        /^pixmill_http_requests_total\{method="GET",route="\/getById",status="200"[^}]*\} (\d+)$/m.exec(
          (await call(stack.database, 'GET', '/metrics')).text,
        )?.[1] ?? 0,
      )
    for (let i = 0; i < 20; i++) expect((await get(`/isReady?id=${id}`)).text).toBe('0')
    expect(await reads()).toBe(1)
    const claim = JSON.parse((await post('/getNewTask')).text) as { id: number; leaseToken: string }
    await call(stack.storage, 'POST', `/sendImage?id=${id}&state=finished`, RESULT, { 'content-type': 'image/png' })
    expect((await post(`/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`)).text).toBe('success')
    expect((await get(`/isReady?id=${id}`)).text).toBe('1')
    // Finished is never answered from memory: each poll asks, so that a removal shows at once.
    await get(`/isReady?id=${id}`)
    expect(await reads()).toBe(3)
  })
})

describe('master: GET /wait', () => {
  test('answers at once for a task that has ended, and as soon as a waiting task finishes through this master', async () => {
    const id = await upload()
    const waiting = call(stack.master, 'GET', `/wait?id=${id}&timeout=10`)
    await waitFor('the client to wait', () => stack.taskWaits.size() === 1)
    const claim = JSON.parse((await post('/getNewTask')).text) as { leaseToken: string }
    await call(stack.storage, 'POST', `/sendImage?id=${id}&state=finished`, RESULT, { 'content-type': 'image/png' })
    await post(`/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`)
    const answer = await waiting
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.text)).toMatchObject({ id, state: 2, stateName: 'finished' })
    // The same JSON as /status.
    expect(JSON.parse((await get(`/wait?id=${id}`)).text)).toEqual(JSON.parse((await get(`/status?id=${id}`)).text))
  })

  test('after its timeout it answers the task as it is (200), so that a client asks again', async () => {
    const id = await upload()
    const answer = await get(`/wait?id=${id}&timeout=1`)
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.text)).toMatchObject({ id, state: 0 })
  })

  test('bad ids and timeouts are 400, an unknown id 404, all with an Error: body', async () => {
    for (const query of ['id=abc', 'id=1&timeout=0', 'id=1&timeout=61', 'id=1&timeout=2.5', 'id=1&timeout=x', 'timeout=5']) {
      const got = await get(`/wait?${query}`)
      expect(got.status).toBe(400)
      expect(got.text).toStartWith('Error:')
    }
    const unknown = await get('/wait?id=999&timeout=1')
    expect(unknown.status).toBe(404)
    expect(unknown.text).toStartWith('Error:')
  })
})

describe('master: uploads passed to storage unread', () => {
  const pool = stackPool()
  afterEach(() => pool.closeAll())

  /** The request a client sends over HTTP: with Content-Length (app.handle would not add it). */
  const sized = (body: Uint8Array<ArrayBuffer>) =>
    new Request(`${ORIGIN}/new`, { method: 'POST', body, headers: { 'content-type': 'image/png', 'content-length': String(body.byteLength) } })
  const answer = async (stack: ReturnType<typeof inProcessStack>, request: Request) => {
    const response = await stack.master.handle(request)
    return { status: response.status, text: await response.text() }
  }
  const taskList = async (stack: ReturnType<typeof inProcessStack>) => (await call(stack.database, 'GET', '/list')).text.trim().split('\n').filter(Boolean)
  /** What the master answers a body itself, read and checked before storage hears of it. */
  const ownAnswer = (body: Uint8Array<ArrayBuffer>) => {
    try {
      checkPngHead(body.subarray(0, PNG_HEADER_BYTES))
      return undefined
    } catch (error) {
      return { status: (error as HttpError).status, text: `Error: ${(error as Error).message}` }
    }
  }
  const BAD_BODIES = [
    ['a text body', new TextEncoder().encode('hello, this is not an image at all')],
    ['the signature then garbage', new Uint8Array([...PNG_SIGNATURE, ...new Uint8Array(40).fill(7)])],
    ['a PNG cut inside its header', PNG.subarray(0, 20)],
  ] as const

  test('once storage showed that it checks PNG headers, the stream the client sent is what storage reads', async () => {
    const bodies: Array<ReadableStream | null> = []
    const stack = pool.with({
      maxUploadBytes: 64 * 1024,
      storageTransport: (request, storage) => {
        if (new URL(request.url).pathname === '/sendImage') bodies.push(request.body)
        return storage(request)
      },
    })
    const first = sized(PNG)
    expect(await answer(stack, first)).toEqual({ status: 200, text: '0' })
    const second = sized(RESULT)
    expect(await answer(stack, second)).toEqual({ status: 200, text: '1' })
    expect(bodies).toHaveLength(2)
    // The first was read here (its header checked) and passed on as a new stream; the second went on as it came.
    expect(bodies[0]).not.toBe(first.body)
    expect(bodies[1]).toBe(second.body)
    const stored = await stack.storage.handle(new Request(`${ORIGIN}/getImage?id=1&state=working`))
    expect(new Uint8Array(await stored.arrayBuffer())).toEqual(RESULT)
    expect((await call(stack.master, 'GET', '/status?id=1')).text).toContain('"state":0')
  })

  test.each(BAD_BODIES)('storage refuses %s with the answer the master gives, and the task reserved for it is dropped', async (_what, body) => {
    const stack = pool.with({ maxUploadBytes: 64 * 1024 })
    expect((await answer(stack, sized(PNG))).status).toBe(200)
    expect(await answer(stack, sized(body))).toEqual(ownAnswer(body)!)
    expect(await taskList(stack)).toHaveLength(1)
    expect(storedImages(join(stack.dir, 'storage'))).toEqual(['working/0.png'])
    // The next upload is accepted as usual.
    expect(await answer(stack, sized(RESULT))).toEqual({ status: 200, text: '2' })
  })

  test('a storage that answers without X-Png-Size, as an original one, gets every upload read and checked here', async () => {
    const sent: Array<ReadableStream | null> = []
    const stack = pool.with({
      maxUploadBytes: 64 * 1024,
      storageTransport: async (request, storage) => {
        if (new URL(request.url).pathname === '/sendImage') sent.push(request.body)
        const response = await storage(request)
        const headers = new Headers(response.headers)
        headers.delete(PNG_SIZE_HEADER)
        return new Response(response.body, { status: response.status, headers })
      },
    })
    const uploads = [sized(PNG), sized(RESULT), sized(PNG)]
    for (const upload of uploads) expect((await answer(stack, upload)).status).toBe(200)
    expect(sent.some((body, i) => body === uploads[i]!.body)).toBe(false)
    const [, bad] = BAD_BODIES[1]
    expect(await answer(stack, sized(bad))).toEqual(ownAnswer(bad)!)
    // Refused before a task was reserved or storage was called.
    expect(sent).toHaveLength(3)
    expect(await taskList(stack)).toHaveLength(3)
  })

  test('a storage replaced by one that stores any body: the image is read back, and one that is not a PNG goes with its task', async () => {
    // After the first upload storage's address is taken over by a store of the original kind: it keeps any body.
    let original = false
    const kept = new Map<string, Uint8Array<ArrayBuffer>>()
    const stack = pool.with({
      maxUploadBytes: 64 * 1024,
      storageTransport: async (request, storage) => {
        if (!original) return storage(request)
        const url = new URL(request.url)
        const key = `${url.searchParams.get('state')}/${url.searchParams.get('id')}`
        if (url.pathname === '/sendImage') {
          kept.set(key, new Uint8Array(await request.arrayBuffer()))
          return new Response('success')
        }
        if (url.pathname === '/getImage') return kept.has(key) ? new Response(kept.get(key)) : new Response('Error: no image', { status: 404 })
        return new Response('404 page not found\n', { status: 404 })
      },
    })
    expect((await answer(stack, sized(PNG))).status).toBe(200)
    original = true
    const [, bad] = BAD_BODIES[1]
    expect(await answer(stack, sized(bad))).toEqual(ownAnswer(bad)!)
    expect(await taskList(stack)).toHaveLength(1)
    expect((await call(stack.master, 'POST', '/getNewTask')).text).toContain('"id":0')
    expect((await call(stack.master, 'POST', '/getNewTask')).status).toBe(404)
    // Learnt: the next bad body is refused here, without a call to storage.
    kept.clear()
    expect(await answer(stack, sized(bad))).toEqual(ownAnswer(bad)!)
    expect(kept.size).toBe(0)
  })

  test('a body that stops coming gets 408 when PIXMILL_UPLOAD_TIMEOUT_SECONDS runs out; no task is left', async () => {
    const stack = pool.with({ maxUploadBytes: 64 * 1024, uploadTimeoutSeconds: 1 })
    expect((await answer(stack, sized(PNG))).status).toBe(200)
    const stalled = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(PNG)
      },
    })
    const started = performance.now()
    const got = await answer(
      stack,
      new Request(`${ORIGIN}/new`, { method: 'POST', body: stalled, headers: { 'content-length': '50000' }, duplex: 'half' } as RequestInit),
    )
    expect(got.status).toBe(408)
    expect(got.text).toStartWith('Error:')
    expect(performance.now() - started).toBeLessThan(5000)
    expect(await taskList(stack)).toHaveLength(1)
  })
})
