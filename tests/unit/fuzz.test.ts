// Property-based fuzzing (fast-check): random queries, headers and bodies against every role app in-process.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import type { AnyElysia } from 'elysia'
import fc from 'fast-check'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { createTaskWatch } from '../../src/roles/frontend/task-watch.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { hasPngSignature, PNG_SIGNATURE, parsePngHeader } from '../../src/shared/png-header.ts'
import { ORIGIN } from '../helpers/http.ts'
import { concat, encodePng, ihdrChunk, signature } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { storedImages } from '../helpers/stored-files.ts'
import { tempDir } from '../helpers/temp.ts'

const LIMIT = 4096
const PNG = encodePng(3, 2, 2, 8, [
  [
    [1, 2, 3],
    [4, 5, 6],
    [7, 8, 9],
  ],
  [
    [10, 11, 12],
    [13, 14, 15],
    [16, 17, 18],
  ],
])
const stack = inProcessStack({ maxUploadBytes: LIMIT })
const kvDir = tempDir()
const kvStore = openSqliteKvStore(join(kvDir.path, 'kv'))
const kv = createKvApp({ store: kvStore, ...quietDeps('kv') })
const masterClient = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), (request) => stack.master.handle(request))
const watch = createTaskWatch({ status: (id) => masterClient.status(id), minIntervalMs: 20, maxIntervalMs: 100 })
const frontend = createFrontendApp({ master: masterClient, maxUploadBytes: LIMIT, watch, ...quietDeps('frontend') })
const APPS: Record<string, AnyElysia> = { kv, database: stack.database, storage: stack.storage, master: stack.master, frontend }

beforeAll(async () => {
  // A few tasks and images, so that random ids sometimes hit something real.
  for (let i = 0; i < 3; i++) await stack.master.handle(new Request(`${ORIGIN}/new`, { method: 'POST', body: PNG }))
})
afterAll(async () => {
  watch.close()
  await stack.close()
  await kvStore.close()
  kvDir.remove()
})

/** Every route of each app, from its own route table (the 405 catch-alls left out). */
const ROUTES = Object.entries(APPS).flatMap(([role, app]) =>
  app.routes.filter((route) => route.method !== 'ALL').map(({ path, method }) => ({ role, path, method })),
)

const KEYS = ['id', 'key', 'value', 'state', 'lease', 'error', 'ms', 'limit', 'ids', 'prefix', 'ttl']
const VALUES = ['0', '1', '-1', '1.5', '1e3', ' 1', '0x1', '01', '9007199254740993', '', 'working', 'finished', '../../etc/passwd', '%2e%2e%2f', '0,1,2']
/** A query part: known or random keys and values, raw percent escapes (some broken), unicode, and very long values. */
const queryPart = fc
  .tuple(
    fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 6 })),
    fc.oneof(
      fc.constantFrom(...VALUES),
      fc.string({ maxLength: 20 }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.stringMatching(/^(%[0-9A-Fa-f]{0,2}|[a-z0-9.]){0,12}$/),
      fc.integer({ min: 1000, max: 100_000 }).map((n) => 'x'.repeat(n)),
    ),
    fc.boolean(),
  )
  .map(([key, value, encode]) => (encode ? `${encodeURIComponent(key)}=${encodeURIComponent(value)}` : `${key}=${value}`))

async function answer(app: AnyElysia, request: Request): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await app.handle(request)
  // An event stream never ends by itself; its first bytes are enough.
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
    await response.body?.cancel()
    return { status: response.status, text: '', headers: response.headers }
  }
  return { status: response.status, text: await response.text(), headers: response.headers }
}

const stored = (area: string) => storedImages(join(stack.dir, 'storage')).filter((name) => name.startsWith(`${area}/`))
const taskCount = async () => Object.values(await stack.tasks.countByState()).reduce((a, b) => a + b, 0)

describe('fuzz: random queries on every route of every role', () => {
  test('never a 5xx, and every 4xx body starts with `Error:`', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        // Mostly the route's own method, so that most requests get past the 405 to the query checks.
        fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH')),
        fc.array(queryPart, { maxLength: 5 }),
        async ({ role, path, method: own }, other, parts) => {
          const method = other === undefined ? own : other
          const url = `${ORIGIN}${path}${parts.length > 0 ? `?${parts.join('&')}` : ''}`
          let request: Request
          try {
            request = new Request(url, { method })
          } catch {
            return // not a URL a client could send
          }
          const got = await answer(APPS[role]!, request)
          expect({ role, method, url: url.slice(0, 200), status: got.status < 500 }).toEqual({ role, method, url: url.slice(0, 200), status: true })
          if (got.status >= 400) expect(got.text).toStartWith('Error:')
        },
      ),
      { numRuns: 300 },
    )
  })
})

/** What a valid IHDR is, written apart from the code under test. */
function reallyValidIhdr(bytes: Uint8Array): boolean {
  if (bytes.length < 33 || !PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return false
  const view = new DataView(bytes.buffer, bytes.byteOffset, 33)
  if (view.getUint32(8) !== 13 || new TextDecoder().decode(bytes.subarray(12, 16)) !== 'IHDR') return false
  if (crc32(bytes.subarray(12, 29)) !== view.getUint32(29)) return false
  const [width, height] = [view.getUint32(16), view.getUint32(20)]
  const [depth, colour, compression, filter, interlace] = bytes.subarray(24, 29)
  const depths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] }
  return (
    width >= 1 &&
    height >= 1 &&
    width < 2 ** 31 &&
    height < 2 ** 31 &&
    !!depths[colour!]?.includes(depth!) &&
    compression === 0 &&
    filter === 0 &&
    interlace! <= 1
  )
}

const validHeader = fc
  .record({
    width: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    height: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    type: fc.constantFrom([0, 1], [0, 16], [2, 8], [3, 4], [4, 16], [6, 8]),
    interlace: fc.constantFrom(0, 1),
  })
  .map(({ width, height, type, interlace }) => concat([signature(), ihdrChunk(width, height, type[1]!, type[0]!, interlace)]))
/** A valid header with random bytes changed, cut or added. */
const mutatedHeader = fc
  .tuple(
    validHeader,
    fc.array(fc.tuple(fc.nat(40), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
    fc.oneof(fc.constant(undefined), fc.nat(40)),
    fc.uint8Array({ maxLength: 20 }),
  )
  .map(([header, changes, cut, tail]) => {
    const bytes = concat([header, tail])
    for (const [at, value] of changes) if (at < bytes.length) bytes[at] = value
    return cut === undefined ? bytes : bytes.subarray(0, cut)
  })

describe('fuzz: PNG headers', () => {
  test('random bytes and mutated headers: parsePngHeader never throws, and accepts only a really valid IHDR', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutatedHeader, validHeader), (bytes) => {
        expect(hasPngSignature(bytes)).toBe(bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b))
        const parsed = parsePngHeader(bytes)
        expect('header' in parsed).toBe(reallyValidIhdr(bytes))
        if ('header' in parsed) expect(parsed.header.width).toBe(new DataView(bytes.buffer, bytes.byteOffset).getUint32(16))
      }),
      { numRuns: 1000 },
    )
  })
})

/** Bodies: random bytes, the signature then random bytes, a valid header then random bytes, sizes around the limit. */
const body = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((tail) => concat([signature(), tail])),
  fc.tuple(mutatedHeader, fc.uint8Array({ maxLength: 100 })).map(([head, tail]) => concat([head, tail])),
  fc.integer({ min: LIMIT - 40, max: LIMIT + 40 }).map((n) => concat([PNG, new Uint8Array(Math.max(0, n - PNG.length))])),
)

describe('fuzz: upload bodies', () => {
  test('master POST /new: never a 5xx; an id only with the image stored as sent, else no task and no image', async () => {
    await fc.assert(
      fc.asyncProperty(body, async (bytes) => {
        const [tasksBefore, imagesBefore] = [await taskCount(), stored('working')]
        const got = await answer(stack.master, new Request(`${ORIGIN}/new`, { method: 'POST', body: bytes }))
        expect(got.status).toBeLessThan(500)
        if (got.status !== 200) {
          expect(got.text).toStartWith('Error:')
          expect([await taskCount(), stored('working')]).toEqual([tasksBefore, imagesBefore])
          return
        }
        expect(reallyValidIhdr(bytes) && bytes.length <= LIMIT).toBe(true)
        expect(await stack.images.open(Number(got.text), 'working').then((image) => (image!.body as Blob).bytes())).toEqual(bytes)
      }),
      { numRuns: 150 },
    )
  })

  test('storage POST /sendImage: never a 5xx; `success` only with the image stored as sent, else nothing new on disk', async () => {
    await fc.assert(
      fc.asyncProperty(body, fc.nat(1000), async (bytes, n) => {
        const id = 10_000 + n
        const before = stored('finished')
        const got = await answer(stack.storage, new Request(`${ORIGIN}/sendImage?id=${id}&state=finished`, { method: 'POST', body: bytes }))
        expect(got.status).toBeLessThan(500)
        if (got.status !== 200) {
          expect(got.text).toStartWith('Error:')
          expect(stored('finished')).toEqual(before)
          return
        }
        expect(hasPngSignature(bytes) && bytes.length <= LIMIT).toBe(true)
        expect(await stack.images.open(id, 'finished').then((image) => (image!.body as Blob).bytes())).toEqual(bytes)
      }),
      { numRuns: 150 },
    )
  })
})

/** A multipart form put together by hand, so that it can be wrong in every way; often it is right. */
const formPart = fc.record({
  name: fc.oneof({ arbitrary: fc.constant('uploadfile'), weight: 4 }, fc.constantFrom('respond', 'other'), fc.string({ maxLength: 8 })),
  filename: fc.oneof(fc.constant(undefined), { arbitrary: fc.constantFrom('a.png', '', 'x"y.png', '../../etc/passwd'), weight: 3 }),
  content: fc.oneof(
    { arbitrary: fc.constant(PNG), weight: 4 },
    fc.uint8Array({ maxLength: 100 }),
    fc.constant(PNG.subarray(0, 20)),
    fc.constant(new TextEncoder().encode('page')),
    fc.constant(concat([PNG, new Uint8Array(LIMIT)])),
  ),
})
const form = fc.record({
  boundary: fc.stringMatching(/^[A-Za-z0-9'()+_,.-]{1,40}$/),
  parts: fc.oneof(
    {
      arbitrary: fc
        .tuple(formPart, fc.array(formPart, { maxLength: 2 }))
        .map(([first, rest]) => [{ ...first, name: 'uploadfile', filename: 'a.png' }, ...rest]),
      weight: 2,
    },
    fc.array(formPart, { maxLength: 3 }),
  ),
  ending: fc.oneof({ arbitrary: fc.constant('--\r\n'), weight: 4 }, fc.constantFrom('--', '', '\r\n')),
  cut: fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, fc.nat(300)),
})

describe('fuzz: frontend POST /submitTask', () => {
  test('random multipart forms: never a 5xx; an id only for one PNG in `uploadfile`, stored as sent; else nothing left', async () => {
    await fc.assert(
      fc.asyncProperty(form, async ({ boundary, parts, ending, cut }) => {
        const pieces: Uint8Array[] = []
        const text = (s: string) => pieces.push(new TextEncoder().encode(s))
        for (const part of parts) {
          text(
            `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}\r\n\r\n`,
          )
          pieces.push(part.content)
          text('\r\n')
        }
        text(`--${boundary}${ending}`)
        const whole = concat(pieces)
        const bytes = cut === undefined ? whole : whole.subarray(0, cut)
        const [tasksBefore, imagesBefore] = [await taskCount(), stored('working')]
        const headers = { 'content-type': `multipart/form-data; boundary=${boundary}` }
        const got = await answer(frontend, new Request(`${ORIGIN}/submitTask`, { method: 'POST', body: bytes, headers }))
        expect(got.status).toBeLessThan(500)
        if (got.status >= 400) {
          expect(got.text).toStartWith('Error:')
          expect([await taskCount(), stored('working')]).toEqual([tasksBefore, imagesBefore])
          return
        }
        // The page's own form (respond=page) is sent on to the task's page.
        const id = Number(got.status === 303 ? got.headers.get('location')!.replace('/task?id=', '') : got.text)
        const files = parts.filter((part) => part.name === 'uploadfile')
        expect(files.length).toBeGreaterThanOrEqual(1)
        const image = await stack.images.open(id, 'working')
        expect(await (image!.body as Blob).bytes()).toEqual(files[0]!.content)
      }),
      { numRuns: 200 },
    )
  })
})
