// frontend routes through app.handle, over a real in-process master with its database and storage apps.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { createTaskWatch, type TaskWatch } from '../../src/roles/frontend/task-watch.ts'
import { call, ORIGIN } from '../helpers/http.ts'
import { encodePng } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { storedImages } from '../helpers/stored-files.ts'
import { waitFor } from '../helpers/wait-for.ts'

const LIMIT = 64 * 1024
let stack: ReturnType<typeof inProcessStack>
let frontend: ReturnType<typeof createFrontendApp>
let watch: TaskWatch
let masterUp: boolean
beforeEach(() => {
  stack = inProcessStack({ maxUploadBytes: LIMIT, maxAttempts: 2 })
  masterUp = true
  const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), (request) =>
    masterUp ? stack.master.handle(request) : Promise.reject(new Error('connection refused')),
  )
  watch = createTaskWatch({ status: (id) => master.status(id), minIntervalMs: 20, maxIntervalMs: 100 })
  frontend = createFrontendApp({ master, maxUploadBytes: LIMIT, watch, ...quietDeps('frontend') })
})
afterEach(async () => {
  watch.close()
  await stack.close()
})

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

function form(parts: Record<string, Blob | string>): FormData {
  const data = new FormData()
  for (const [name, value] of Object.entries(parts)) {
    if (typeof value === 'string') data.append(name, value)
    else data.append(name, value, 'image.png')
  }
  return data
}
const png = (bytes: Uint8Array = PNG) => new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'image/png' })
const submit = (body: BodyInit, headers?: HeadersInit) => call(frontend, 'POST', '/submitTask', body, headers)
const get = (path: string) => call(frontend, 'GET', path)
const master = (method: string, path: string, body?: BodyInit) => call(stack.master, method, path, body)
const storedWorking = () =>
  storedImages(join(stack.dir, 'storage'))
    .filter((name) => name.startsWith('working/'))
    .map((name) => name.slice('working/'.length))
async function bytesOf(path: string): Promise<{ status: number; type: string | null; bytes: Uint8Array }> {
  const response = await frontend.handle(new Request(ORIGIN + path))
  return { status: response.status, type: response.headers.get('content-type'), bytes: new Uint8Array(await response.arrayBuffer()) }
}

/** What a worker does: claim, store the result, report it finished. */
async function finish(id: number) {
  expect(JSON.parse((await master('POST', '/getNewTask')).text).id).toBe(id)
  await stack.storage.handle(new Request(`${ORIGIN}/sendImage?id=${id}&state=finished`, { method: 'POST', body: RESULT }))
  expect((await master('POST', `/registerTaskFinished?id=${id}`)).text).toBe('success')
}

/** A hand-made multipart body, delivered in chunks of `size` bytes so that boundaries fall across reads. */
function rawForm(parts: string[], boundary: string, fileBytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  const [before, after] = parts.map((p) => new TextEncoder().encode(p.replaceAll('{b}', boundary)))
  const all = Buffer.concat([before!, fileBytes, after!])
  return new ReadableStream({
    start(controller) {
      for (let i = 0; i < all.length; i += size) controller.enqueue(all.subarray(i, i + size))
      controller.close()
    },
  })
}

describe('frontend: GET / and the page files', () => {
  test('GET / is an HTML page whose plain form posts the file as multipart in the field uploadfile', async () => {
    const page = await get('/')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.text).toMatch(/<form[^>]*method="post"[^>]*action="\/submitTask"[^>]*enctype="multipart\/form-data"/)
    expect(page.text).toMatch(/<input type="file"[^>]*name="uploadfile"/)
    expect(page.text).toContain('aria-live="polite"')
    // Without JavaScript the page still tells the configured limit.
    expect(page.text).toContain('<span id="limit">64 KiB</span>')
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'")
  })

  test.each([
    ['/app.js', 'text/javascript'],
    ['/live.js', 'text/javascript'],
    ['/board.js', 'text/javascript'],
    ['/style.css', 'text/css'],
    ['/board', 'text/html'],
  ])('%s is served as %s', async (path, type) => {
    const got = await get(path)
    expect(got.status).toBe(200)
    expect(got.headers.get('content-type')).toStartWith(type)
    expect(got.text.length).toBeGreaterThan(100)
  })
})

describe('frontend: POST /submitTask, GET /isReady, GET /getImage', () => {
  test('answers the task id as text, stores the upload unchanged, and passes isReady and getImage through', async () => {
    const answer = await submit(form({ uploadfile: png() }))
    expect(answer).toMatchObject({ status: 200, text: '0' })
    expect(new Uint8Array(await (await stack.storage.handle(new Request(`${ORIGIN}/getImage?id=0&state=working`))).arrayBuffer())).toEqual(PNG)
    expect(await get('/isReady?id=0')).toMatchObject({ status: 200, text: '0' })
    const early = await get('/getImage?id=0')
    expect(early.status).toBe(404)
    expect(early.text).toStartWith('Error:')
    await finish(0)
    expect(await get('/isReady?id=0')).toMatchObject({ status: 200, text: '1' })
    expect(await bytesOf('/getImage?id=0')).toEqual({ status: 200, type: 'image/png', bytes: RESULT })
  })

  test('streams a form that arrives in 7-byte pieces, boundaries split across reads, byte for byte', async () => {
    const file = encodePng(
      40,
      30,
      2,
      8,
      Array.from({ length: 30 }, (_, y) => Array.from({ length: 40 }, (_, x) => [x, y, (x * y) % 256])),
    )
    const body = rawForm(
      [
        '--{b}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--{b}\r\nContent-Disposition: form-data; name="uploadfile"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n',
        '\r\n--{b}--\r\n',
      ],
      'xYz--boundary',
      file,
      7,
    )
    const answer = await submit(body, { 'content-type': 'multipart/form-data; boundary=xYz--boundary' })
    expect(answer).toMatchObject({ status: 200, text: '0' })
    expect(new Uint8Array(await (await stack.storage.handle(new Request(`${ORIGIN}/getImage?id=0&state=working`))).arrayBuffer())).toEqual(file)
  })

  test('file bytes that look like the start of a delimiter are passed on unchanged, however the reads fall', async () => {
    const tricky = new TextEncoder().encode('\r\n--xYz--boundar\r\r\n-\r\n--xYz--boundarX\r\n--\r')
    const file = Buffer.concat([PNG, tricky, PNG, tricky])
    for (const size of [1, 3, 16, 4096]) {
      const body = rawForm(
        ['--{b}\r\nContent-Disposition: form-data; name="uploadfile"; filename="t.png"\r\n\r\n', '\r\n--{b}--\r\n'],
        'xYz--boundary',
        file,
        size,
      )
      const id = (await submit(body, { 'content-type': 'multipart/form-data; boundary=xYz--boundary' })).text
      expect(new Uint8Array(await (await stack.storage.handle(new Request(`${ORIGIN}/getImage?id=${id}&state=working`))).arrayBuffer())).toEqual(
        new Uint8Array(file),
      )
    }
  })

  test('a quoted boundary, a preamble, transport padding and an escaped file name are read as RFC 2046 allows', async () => {
    const body = rawForm(
      [
        'a preamble that is ignored\r\n--{b}  \t\r\nContent-Disposition: form-data; name="uploadfile"; filename="q \\"x\\".png"\r\n\r\n',
        '\r\n--{b}--\r\nan epilogue',
      ],
      'q:b=1',
      PNG,
      5,
    )
    expect(await submit(body, { 'content-type': 'multipart/form-data; boundary="q:b=1"' })).toMatchObject({ status: 200, text: '0' })
  })

  test('the page form without JavaScript (respond=page) is sent on to the task page, which reloads itself', async () => {
    const answer = await frontend.handle(new Request(`${ORIGIN}/submitTask`, { method: 'POST', body: form({ respond: 'page', uploadfile: png() }) }))
    expect(answer.status).toBe(303)
    expect(answer.headers.get('location')).toBe('/task?id=0')
    const waiting = await get('/task?id=0')
    expect(waiting.status).toBe(200)
    expect(waiting.text).toContain('Waiting')
    expect(waiting.text).toContain('http-equiv="refresh"')
    await finish(0)
    const done = await get('/task?id=0')
    expect(done.text).toContain('src="/getImage?id=0"')
    expect(done.text).not.toContain('http-equiv="refresh"')
    expect((await get('/task?id=42')).status).toBe(404)
  })

  const twoFiles = (): FormData => {
    const data = form({ uploadfile: png() })
    data.append('uploadfile', png(), 'second.png')
    return data
  }
  test.each<[string, number, () => BodyInit, Record<string, string> | undefined]>([
    ['no file at all', 400, () => form({ other: 'x' }), undefined],
    ['the file in another field', 400, () => form({ wrongfield: png() }), undefined],
    ['two files', 400, twoFiles, undefined],
    ['a file after the PNG in another field', 400, () => form({ uploadfile: png(), extra: png() }), undefined],
    [
      'no file chosen (empty, no name)',
      400,
      (): FormData => {
        const d = new FormData()
        d.append('uploadfile', new Blob([]), '')
        return d
      },
      undefined,
    ],
    ['a text file', 415, () => form({ uploadfile: new Blob(['just some text, not an image']) }), undefined],
    ['a raw PNG, not multipart', 415, () => PNG, { 'content-type': 'image/png' }],
    [
      'a form cut short',
      400,
      () => '--b\r\nContent-Disposition: form-data; name="uploadfile"; filename="a.png"\r\n\r\n\x89PNG',
      { 'content-type': 'multipart/form-data; boundary=b' },
    ],
    [
      'a PNG header with a bad CRC',
      400,
      () =>
        form({
          uploadfile: png(
            (() => {
              const b = PNG.slice()
              b[29] = (b[29]! + 1) % 256
              return b
            })(),
          ),
        }),
      undefined,
    ],
  ])('refuses %s with %d and an Error: body, leaving no task and no image', async (_what, status, body, headers) => {
    const got = await submit(body(), headers)
    expect(got.status).toBe(status)
    expect(got.text).toStartWith('Error:')
    expect((await call(stack.database, 'GET', '/list')).text).toBe('')
    expect(storedWorking()).toEqual([])
  })

  test('a Content-Length over the limit is refused with 413 before the body is read', async () => {
    let pulled = 0
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        pulled++
        c.enqueue(new Uint8Array(1024))
      },
    })
    const got = await submit(body, { 'content-type': 'multipart/form-data; boundary=b', 'content-length': String(LIMIT * 4) })
    expect(got.status).toBe(413)
    expect(got.text).toStartWith('Error: The file is larger than the limit')
    expect(pulled).toBeLessThan(3)
  })

  test('a file that passes the limit midway (no Content-Length) is refused with 413 and its task dropped', async () => {
    const big = new Uint8Array(LIMIT + 10)
    big.set(PNG)
    const body = rawForm(['--b\r\nContent-Disposition: form-data; name="uploadfile"; filename="big.png"\r\n\r\n', '\r\n--b--\r\n'], 'b', big, 4096)
    const got = await submit(body, { 'content-type': 'multipart/form-data; boundary=b' })
    expect(got.status).toBe(413)
    expect(got.text).toStartWith('Error:')
    expect((await call(stack.database, 'GET', '/list')).text).toBe('')
  })

  test.each([
    ['/isReady'],
    ['/isReady?id=abc'],
    ['/isReady?id=01'],
    ['/getImage?id=abc'],
    ['/getImage?id=1&id=2'],
    ['/api/status?id=-1'],
    ['/api/events?ids=1,,2'],
  ])('GET %s is 400 with an Error: body', async (path) => {
    const got = await get(path)
    expect(got.status).toBe(400)
    expect(got.text).toStartWith('Error:')
  })

  test('unknown ids are 404 as the master answers; GET /submitTask is 405 with Allow', async () => {
    for (const path of ['/isReady?id=987654', '/getImage?id=987654', '/api/status?id=987654']) {
      expect(await get(path)).toMatchObject({ status: 404, text: 'Error: No task with id 987654.' })
    }
    const wrong = await get('/submitTask')
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
    expect(wrong.text).toStartWith('Error:')
  })
})

describe('frontend: the page and board API', () => {
  test('/api/config tells the page the limit; /api/status gives the task', async () => {
    expect(JSON.parse((await get('/api/config')).text)).toEqual({ maxUploadBytes: LIMIT, field: 'uploadfile' })
    await submit(form({ uploadfile: png() }))
    expect(JSON.parse((await get('/api/status?id=0')).text)).toMatchObject({ id: 0, state: 0, stateName: 'not-started', attempts: 0 })
  })

  test('/api/board counts states and lists failed tasks with their reason; /api/retry puts one back, then 409', async () => {
    for (let i = 0; i < 3; i++) await submit(form({ uploadfile: png() }))
    for (let i = 0; i < 2; i++) {
      expect(JSON.parse((await master('POST', '/getNewTask')).text).id).toBe(0)
      await master('POST', '/registerTaskFailed?id=0&error=cannot%20decode')
    }
    const board = JSON.parse((await get('/api/board')).text)
    expect(board.counts).toEqual({ 'not-started': 2, 'in-progress': 0, finished: 0, failed: 1 })
    expect(board.latest.map((t: { id: number }) => t.id)).toEqual([2, 1, 0])
    expect(board.failed).toMatchObject([{ id: 0, state: 3, error: 'cannot decode', attempts: 2 }])
    expect(await call(frontend, 'POST', '/api/retry?id=0')).toMatchObject({ status: 200, text: 'success' })
    expect(JSON.parse((await get('/api/status?id=0')).text)).toMatchObject({ state: 0, attempts: 0 })
    const again = await call(frontend, 'POST', '/api/retry?id=0')
    expect(again.status).toBe(409)
    expect(again.text).toStartWith('Error:')
  })

  test('/api/board lists the live workers from its directory, and says so when they cannot be listed, with the tasks still shown', async () => {
    const worker = { address: '10.0.0.7:4100', reachable: true, loops: 2, busy: 1, done: 5, failed: 0, lastSeen: '2026-11-30T10:00:00.000Z', problem: null }
    let kvUp = true
    const withWorkers = createFrontendApp({
      master: createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), (request) => stack.master.handle(request)),
      maxUploadBytes: LIMIT,
      watch,
      workers: { list: async () => (kvUp ? [worker] : Promise.reject(new Error('kv at kv.local is unreachable'))), histories: async () => [] },
      ...quietDeps('frontend'),
    })
    await submit(form({ uploadfile: png() }))
    const board = JSON.parse((await call(withWorkers, 'GET', '/api/board')).text)
    expect(board.workers).toEqual([worker])
    expect(board.latest).toHaveLength(1)
    kvUp = false
    const without = await call(withWorkers, 'GET', '/api/board')
    expect(without.status).toBe(200)
    expect(JSON.parse(without.text)).toMatchObject({ workers: [], workersProblem: 'The workers cannot be listed: kv at kv.local is unreachable' })
    // No directory: an empty list.
    expect(JSON.parse((await get('/api/board')).text).workers).toEqual([])
  })

  test('/api/events streams each task’s state at once and again when it changes, and `unknown` for an unknown id', async () => {
    await submit(form({ uploadfile: png() }))
    const controller = new AbortController()
    const response = await frontend.handle(new Request(`${ORIGIN}/api/events?ids=0,77`, { signal: controller.signal }))
    expect(response.headers.get('content-type')).toStartWith('text/event-stream')
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    let seen = ''
    const until = async (text: string) => {
      while (!seen.includes(text)) seen += (await reader.read()).value ?? ''
    }
    await until('event: unknown\ndata: {"id":77}')
    await until('"stateName":"not-started"')
    await finish(0)
    await until('"stateName":"finished"')
    controller.abort()
    await reader.cancel()
    expect(seen).toStartWith('retry: 3000\n\n')
  })
})

describe('frontend: health, metrics, swagger and a master that is down', () => {
  test('/health is 200 while the master answers, 503 while it does not; uploads then get a 5xx, not a 4xx', async () => {
    expect(await get('/health')).toMatchObject({ status: 200 })
    masterUp = false
    const health = await get('/health')
    expect(health.status).toBe(503)
    expect(JSON.parse(health.text)).toMatchObject({ role: 'frontend', ok: false })
    const upload = await submit(form({ uploadfile: png() }))
    expect(upload.status).toBeGreaterThanOrEqual(502)
    expect(upload.text).toStartWith('Error:')
    expect((await get('/isReady?id=0')).status).toBeGreaterThanOrEqual(502)
  })

  test('/metrics counts requests per route and uploads by outcome; /swagger/json documents the routes', async () => {
    await submit(form({ uploadfile: png() }))
    await get('/isReady?id=0')
    // The counters are updated once the answer has gone out, a moment after handle() resolves.
    const metrics = await waitFor('the requests to be counted', async () => {
      const text = (await get('/metrics')).text
      return text.includes('route="/isReady"') && text
    })
    expect(metrics).toContain('route="/isReady"')
    expect(metrics).toContain('pixmill_frontend_uploads_total{outcome="accepted",role="frontend"} 1')
    const spec = JSON.parse((await get('/swagger/json')).text)
    for (const path of ['/submitTask', '/isReady', '/getImage', '/api/events', '/api/board', '/api/retry']) expect(spec.paths).toHaveProperty([path])
    expect(Object.keys(spec.paths['/submitTask'].post.requestBody.content)).toEqual(['multipart/form-data'])
  })
})
