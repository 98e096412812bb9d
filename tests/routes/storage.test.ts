// storage routes through app.handle: the contract's answers, streaming details, every bad id and traversal attempt.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { renameSync } from 'node:fs'
import { join } from 'node:path'
import { createStorageApp } from '../../src/roles/storage/app.ts'
import { openFsImageStore } from '../../src/roles/storage/fs-image-store.ts'
import type { ImageStore } from '../../src/roles/storage/image-store.ts'
import { PNG_SIZE_HEADER } from '../../src/shared/wire/headers.ts'
import { call, ORIGIN } from '../helpers/http.ts'
import { pngBytes, streamOf } from '../helpers/image-store-contract.ts'
import { ihdrChunk, signature } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { filesBelow } from '../helpers/stored-files.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const MAX = 256 * 1024
let dir: ReturnType<typeof tempDir>
let store: ImageStore
let app: ReturnType<typeof createStorageApp>
beforeEach(() => {
  dir = tempDir()
  store = openFsImageStore(join(dir.path, 'storage'))
  app = createStorageApp({ store, ...quietDeps('storage'), maxUploadBytes: MAX })
})
afterEach(async () => {
  await store.close()
  dir.remove()
})

const send = (query: string, body: BodyInit | null, headers?: HeadersInit) => call(app, 'POST', `/sendImage?${query}`, body, headers)
async function getBytes(query: string, headers?: HeadersInit) {
  const response = await app.handle(new Request(`${ORIGIN}/getImage?${query}`, { headers }))
  return { status: response.status, headers: response.headers, bytes: new Uint8Array(await response.arrayBuffer()) }
}
/** Every file below the test's data folder, relative to it: nothing may appear outside storage/<area>/<shard>/<id>.png. */
const allFiles = () => filesBelow(dir.path)

describe('storage: POST /sendImage and GET /getImage', () => {
  // Content-Length is Bun's to set when it sends the file (see the e2e test); app.handle gives the bare Response.
  test('send answers `success`; get gives the same bytes as image/png with an ETag', async () => {
    const png = pngBytes(100_000)
    expect(await send('id=7001&state=working', png, { 'content-type': 'image/png' })).toMatchObject({ status: 200, text: 'success' })
    const got = await getBytes('id=7001&state=working')
    expect(got.status).toBe(200)
    expect(got.bytes).toEqual(png)
    expect(got.headers.get('content-type')).toBe('image/png')
    expect(got.headers.get('etag')).toMatch(/^"[^"]+"$/)
    expect(got.headers.get('cache-control')).toBe('no-cache')
  })

  test('working and finished are kept apart, and a second send replaces the image', async () => {
    await send('id=7002&state=working', pngBytes(500, 1))
    await send('id=7002&state=finished', pngBytes(700, 2))
    expect((await getBytes('id=7002&state=working')).bytes).toEqual(pngBytes(500, 1))
    expect((await getBytes('id=7002&state=finished')).bytes).toEqual(pngBytes(700, 2))
    expect(await send('id=7002&state=finished', pngBytes(600, 3))).toMatchObject({ status: 200, text: 'success' })
    expect((await getBytes('id=7002&state=finished')).bytes).toEqual(pngBytes(600, 3))
  })

  // Elysia parses a body by its Content-Type once any handler or hook reads `body`; the route says `parse: 'none'`, and
  // this proves the bytes arrive untouched whatever the type (the original client sends none at all).
  test.each([
    ['no Content-Type', undefined],
    ['image/png', 'image/png'],
    ['application/octet-stream', 'application/octet-stream'],
    ['application/json', 'application/json'],
    ['text/plain', 'text/plain'],
    ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded'],
    ['multipart/form-data', 'multipart/form-data; boundary=x'],
  ])('a body sent with %s is stored byte for byte, never parsed', async (_what, type) => {
    const png = pngBytes(3000, 5)
    const request = new Request(`${ORIGIN}/sendImage?id=1&state=working`, { method: 'POST', body: png })
    if (type) request.headers.set('content-type', type)
    else request.headers.delete('content-type')
    const response = await app.handle(request)
    expect({ status: response.status, text: await response.text() }).toEqual({ status: 200, text: 'success' })
    expect((await getBytes('id=1&state=working')).bytes).toEqual(png)
  })

  test('a chunked body (no Content-Length) streams in whole', async () => {
    const png = pngBytes(MAX, 4)
    expect(await send('id=2&state=finished', streamOf(png, 10_000))).toMatchObject({ status: 200, text: 'success' })
    expect((await getBytes('id=2&state=finished')).bytes).toEqual(png)
  })

  test('a missing image is 404 with an Error: body, in either area', async () => {
    await send('id=3&state=working', pngBytes(100))
    for (const query of ['id=987654&state=working', 'id=3&state=finished']) {
      const got = await call(app, 'GET', `/getImage?${query}`)
      expect(got.status).toBe(404)
      expect(got.text).toStartWith('Error:')
    }
  })
})

for (const [from, cacheBytes] of [
  ['its file', 0],
  ['memory (the hot-image cache)', 1024 * 1024],
] as const) {
  describe(`storage: caching and ranges on GET /getImage, the image sent from ${from}`, () => {
    beforeEach(async () => {
      await store.close()
      store = openFsImageStore(join(dir.path, 'storage'), { cacheBytes })
      app = createStorageApp({ store, ...quietDeps('storage'), maxUploadBytes: MAX })
    })

    test('If-None-Match with the current ETag (exact, weak, in a list, or *) is 304 without a body', async () => {
      await send('id=4&state=finished', pngBytes(2000))
      const etag = (await getBytes('id=4&state=finished')).headers.get('etag')!
      for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const got = await getBytes('id=4&state=finished', { 'if-none-match': header })
        expect(got.status).toBe(304)
        expect(got.bytes.byteLength).toBe(0)
        expect(got.headers.get('etag')).toBe(etag)
      }
    })

    test('an ETag of an image since replaced gets the new image (200)', async () => {
      await send('id=5&state=finished', pngBytes(2000, 1))
      const old = (await getBytes('id=5&state=finished')).headers.get('etag')!
      await send('id=5&state=finished', pngBytes(2000, 2))
      const got = await getBytes('id=5&state=finished', { 'if-none-match': old })
      expect(got.status).toBe(200)
      expect(got.bytes).toEqual(pngBytes(2000, 2))
      expect(got.headers.get('etag')).not.toBe(old)
    })

    test('a Range request gets 206 with those bytes; an If-Range naming an older image gets the whole image', async () => {
      const png = pngBytes(5000, 3)
      await send('id=6&state=working', png)
      const etag = (await getBytes('id=6&state=working')).headers.get('etag')!
      const piece = await getBytes('id=6&state=working', { range: 'bytes=100-199', 'if-range': etag })
      expect(piece.status).toBe(206)
      expect(piece.headers.get('content-range')).toBe('bytes 100-199/5000')
      expect(piece.bytes).toEqual(png.slice(100, 200))
      expect((await getBytes('id=6&state=working', { range: 'bytes=-8' })).bytes).toEqual(png.slice(-8))
      const whole = await getBytes('id=6&state=working', { range: 'bytes=100-199', 'if-range': '"stale"' })
      expect(whole.status).toBe(200)
      expect(whole.bytes).toEqual(png)
    })
  })
}

describe('storage: bodies that are refused before anything is written', () => {
  test('what it stores is a PNG as far as its header goes: the answer gives the size the IHDR declares', async () => {
    const head = [...signature(), ...ihdrChunk(640, 480, 8, 2)]
    const got = await send('id=8&state=working', Uint8Array.from([...head, ...new Uint8Array(1000)]))
    expect(got).toMatchObject({ status: 200, text: 'success' })
    expect(got.headers.get(PNG_SIZE_HEADER)).toBe('640x480')
  })

  test('a body with a bad IHDR gets the answer the master gives it, word for word', async () => {
    const bad = Uint8Array.from([...signature(), ...new Uint8Array(100).fill(7)])
    expect((await send('id=8&state=working', bad)).text).toBe('Error: Not a valid PNG: the PNG does not start with a valid IHDR chunk.')
  })

  test.each([
    ['an empty body', new Uint8Array(0), 400],
    ['no body at all', null, 400],
    ['a text body', new TextEncoder().encode('hello, this is not a PNG at all'), 415],
    ['a JPEG', Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46), 415],
    ['the first half of the signature', Uint8Array.of(0x89, 0x50, 0x4e, 0x47), 415],
    ['the signature alone', Uint8Array.from(signature()), 400],
    ['the signature then garbage', Uint8Array.from([...signature(), ...new Uint8Array(100).fill(7)]), 400],
    ['an IHDR with a bad CRC', Uint8Array.from([...signature(), ...ihdrChunk(16, 16, 8, 6).map((b, i) => (i === 20 ? b ^ 1 : b))]), 400],
    ['an IHDR of colour type 2 at 4 bits', Uint8Array.from([...signature(), ...ihdrChunk(16, 16, 4, 2), ...new Uint8Array(50)]), 400],
  ])('%s is %i with an Error: body and stores nothing', async (_what, body, status) => {
    const got = await send('id=8&state=working', body)
    expect(got.status).toBe(status)
    expect(got.text).toStartWith('Error:')
    expect((await getBytes('id=8&state=working')).status).toBe(404)
    expect(allFiles()).toEqual([])
  })

  test('a body over the limit is 413 with an Error: body, by Content-Length at once and by counting when chunked', async () => {
    await send('id=9&state=working', pngBytes(1000, 1))
    const announced = await send('id=9&state=working', pngBytes(MAX + 1))
    const chunked = await send('id=9&state=working', streamOf(pngBytes(MAX + 1), 16 * 1024))
    for (const got of [announced, chunked]) {
      expect(got.status).toBe(413)
      expect(got.text).toBe(`Error: The body is larger than the limit of ${MAX} bytes.`)
    }
    expect((await getBytes('id=9&state=working')).bytes).toEqual(pngBytes(1000, 1))
    expect(allFiles()).toEqual(['storage/working/0/0/9.png'])
  })

  test('a body that breaks off halfway stores nothing, leaves no temp file, and keeps the old image', async () => {
    await send('id=10&state=working', pngBytes(1000, 1))
    for (const id of [10, 11]) {
      const got = await send(`id=${id}&state=working`, streamOf(pngBytes(200_000, 2), 16 * 1024, 100_000))
      expect(got.status).toBe(400)
      expect(got.text).toStartWith('Error: The upload was broken off')
    }
    expect((await getBytes('id=10&state=working')).bytes).toEqual(pngBytes(1000, 1))
    expect((await getBytes('id=11&state=working')).status).toBe(404)
    expect(allFiles()).toEqual(['storage/working/0/0/10.png'])
  })
})

describe('storage: bad ids, states and traversal attempts', () => {
  const badIds = ['-1', '1.5', '1e3', '%201', '1%20', '0x1', '01', '00', '', '+1', 'abc', '1abc', '1234567890123456', '1%00', '１']
  test.each([
    ...badIds.map((id) => [`id=${JSON.stringify(id)}`, `id=${id}&state=working`]),
    ['a missing id', 'state=working'],
    ['a repeated id', 'id=1&id=1&state=working'],
    ['two different ids', 'id=1&state=working&id=2'],
    ['a missing state', 'id=1'],
    ['an unknown state', 'id=1&state=foo'],
    ['a state in capitals', 'id=1&state=WORKING'],
    ['an empty state', 'id=1&state='],
    ['a repeated state', 'id=1&state=working&state=finished'],
    ['id ../../etc/passwd', 'id=../../etc/passwd&state=working'],
    ['id %2e%2e%2f encoded', 'id=%2e%2e%2f%2e%2e%2fetc%2fpasswd&state=working'],
    ['id ..%2F mixed', 'id=..%2F..%2Fetc%2Fpasswd&state=working'],
    ['id double-encoded', 'id=%252e%252e%252f1&state=working'],
    ['id with a slash after digits', 'id=1%2f..%2f..%2fx&state=working'],
    ['state climbing out', 'id=1&state=..%2f..%2f..%2fetc'],
    ['state with a path', 'id=1&state=working%2f..%2f..%2fx'],
    ['state ..', 'id=1&state=%2e%2e'],
    ['a malformed escape', 'id=%E0%A4%A&state=working'],
  ])('%s is 400 with an Error: body on both endpoints, and nothing is written', async (_what, query) => {
    for (const got of [await send(query, pngBytes(100)), await call(app, 'GET', `/getImage?${query}`)]) {
      expect(got.status).toBe(400)
      expect(got.text).toStartWith('Error:')
    }
    expect(allFiles()).toEqual([])
  })

  test.each([
    '/getImage/../../etc/passwd',
    '/getImage/%2e%2e/%2e%2e/etc/passwd',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/sendImage/..%2f..%2fx',
    '/storage/working/0.png',
  ])('the path %s is 4xx with an Error: body', async (path) => {
    for (const method of ['GET', 'POST']) {
      const got = await call(app, method, `${path}?id=1&state=working`, method === 'POST' ? pngBytes(100) : null)
      expect(got.status).toBeGreaterThanOrEqual(400)
      expect(got.status).toBeLessThan(500)
      expect(got.text).toStartWith('Error:')
    }
    expect(allFiles()).toEqual([])
  })
})

describe('storage: a disk filling up', () => {
  test('below PIXMILL_MIN_FREE_BYTES uploads get 507 with an Error: body, /readyz says why, reads go on', async () => {
    await send('id=1&state=working', pngBytes(100))
    for (const minFreeBytes of [Number.MAX_SAFE_INTEGER, { percent: 99.999 }] as const) {
      const full = createStorageApp({ store, ...quietDeps('storage'), maxUploadBytes: MAX, minFreeBytes })
      const refused = await call(full, 'POST', '/sendImage?id=2&state=working', pngBytes(100))
      expect(refused.status).toBe(507)
      expect(refused.text).toMatch(/^Error: The disk has [\d.]+ GiB free, less than PIXMILL_MIN_FREE_BYTES .*refused until there is room/)
      const ready = await call(full, 'GET', '/readyz')
      expect(ready.status).toBe(503)
      expect(JSON.parse(ready.text).reasons[0]).toMatch(/less than PIXMILL_MIN_FREE_BYTES/)
      expect((await call(full, 'GET', '/health')).status).toBe(200)
      expect((await call(full, 'GET', '/livez')).status).toBe(200)
      expect((await call(full, 'GET', '/getImage?id=1&state=working')).status).toBe(200)
      expect((await call(full, 'GET', '/metrics')).text).toMatch(/^pixmill_storage_uploads_rejected_total\{reason="disk_full",[^}]*\} 1$/m)
    }
    expect(allFiles()).toEqual(['storage/working/0/0/1.png'])
    expect((await call(app, 'GET', '/readyz')).status).toBe(200)
  })
})

describe('storage: POST /deleteImage', () => {
  test('removes one image of one area, answers success whether or not there was one, and counts it', async () => {
    await send('id=5&state=working', pngBytes(100))
    await send('id=5&state=finished', pngBytes(300))
    expect(await call(app, 'POST', '/deleteImage?id=5&state=working')).toMatchObject({ status: 200, text: 'success' })
    expect((await getBytes('id=5&state=working')).status).toBe(404)
    expect((await getBytes('id=5&state=finished')).status).toBe(200)
    expect(await call(app, 'POST', '/deleteImage?id=5&state=working')).toMatchObject({ status: 200, text: 'success' })
    expect(allFiles()).toEqual(['storage/finished/0/0/5.png'])
    const metrics = (await call(app, 'GET', '/metrics')).text
    expect(metrics).toMatch(/^pixmill_storage_images_removed_total\{area="working",[^}]*\} 1$/m)
    expect(metrics).toMatch(/^pixmill_storage_removed_bytes_total\{[^}]*\} 100$/m)
    expect(metrics).toMatch(/^pixmill_storage_images\{area="working",[^}]*\} 0$/m)
    expect(metrics).toMatch(/^pixmill_storage_stored_bytes\{area="finished",[^}]*\} 300$/m)
  })

  test('a bad state or a missing one is 400 with an Error: body, and removes nothing', async () => {
    await send('id=6&state=working', pngBytes(100))
    for (const query of ['id=6&state=../working', 'id=6&state=', 'id=6']) {
      const got = await call(app, 'POST', `/deleteImage?${query}`)
      expect(got.status).toBe(400)
      expect(got.text).toStartWith('Error:')
    }
    expect(allFiles()).toEqual(['storage/working/0/0/6.png'])
  })
})

describe('storage: wrong methods', () => {
  test.each([
    ['GET', '/deleteImage', 'POST'],
    ['GET', '/sendImage', 'POST'],
    ['PUT', '/sendImage', 'POST'],
    ['DELETE', '/sendImage', 'POST'],
    ['POST', '/getImage', 'GET, HEAD'],
    ['PUT', '/getImage', 'GET, HEAD'],
    ['PATCH', '/getImage', 'GET, HEAD'],
  ])('%s %s is 405 with Allow: %s and an Error: body', async (method, path, allow) => {
    const got = await call(app, method, `${path}?id=1&state=working`, method === 'GET' ? null : pngBytes(100))
    expect(got.status).toBe(405)
    expect(got.headers.get('allow')).toBe(allow)
    expect(got.text).toStartWith('Error:')
    expect(allFiles()).toEqual([])
  })
})

describe('storage: /health, /metrics, /swagger', () => {
  test('health is 200 while the data folder is there, 503 while it is gone, and sends and gets are 503 then', async () => {
    await send('id=1&state=working', pngBytes(100))
    expect(await call(app, 'GET', '/health')).toMatchObject({ status: 200, text: '{"role":"storage","ok":true}' })
    renameSync(dir.path, `${dir.path}.gone`)
    try {
      const health = await call(app, 'GET', '/health')
      expect(health.status).toBe(503)
      expect(JSON.parse(health.text)).toMatchObject({ role: 'storage', ok: false })
      for (const got of [await send('id=2&state=working', pngBytes(100)), await call(app, 'GET', '/getImage?id=1&state=working')]) {
        expect(got.status).toBe(503)
        expect(got.text).toStartWith('Error:')
      }
    } finally {
      renameSync(`${dir.path}.gone`, dir.path)
    }
    expect((await call(app, 'GET', '/health')).status).toBe(200)
  })

  test('metrics give bytes stored and images stored and served per area, and refused uploads per reason', async () => {
    await send('id=1&state=working', pngBytes(100))
    await send('id=1&state=working', pngBytes(150))
    await send('id=2&state=finished', pngBytes(40))
    await send('id=3&state=finished', 'not a png')
    await getBytes('id=1&state=working')
    // The request counters are updated once the answer has gone out, a moment after handle() resolves.
    const text = await waitFor('the download to be counted', async () => {
      const metrics = (await call(app, 'GET', '/metrics')).text
      return metrics.includes('pixmill_storage_images_served_total{area="working",answer="full",role="storage"} 1') && metrics
    })
    expect(text).toContain('pixmill_storage_stored_bytes{area="working",role="storage"} 150')
    expect(text).toContain('pixmill_storage_stored_bytes{area="finished",role="storage"} 40')
    expect(text).toContain('pixmill_storage_images{area="working",role="storage"} 1')
    expect(text).toContain('pixmill_storage_images_stored_total{area="working",role="storage"} 2')
    expect(text).toContain('pixmill_storage_received_bytes_total{role="storage"} 290')
    expect(text).toContain('pixmill_storage_images_served_total{area="working",answer="full",role="storage"} 1')
    expect(text).toContain('pixmill_storage_uploads_rejected_total{reason="not_png",role="storage"} 1')
    expect(text).toContain('pixmill_http_requests_total{method="GET",route="/getImage",status="200",role="storage"} 1')
    expect(text).toContain('pixmill_http_requests_total{method="POST",route="/sendImage",status="415",role="storage"} 1')
  })

  test('the OpenAPI document offers a file picker for the raw PNG body and names the binary answer', async () => {
    const spec = JSON.parse((await call(app, 'GET', '/swagger/json')).text)
    const sendImage = spec.paths['/sendImage'].post
    expect(sendImage.requestBody.content).toEqual({ 'image/png': { schema: { type: 'string', format: 'binary' } } })
    expect(sendImage.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['id', 'state'])
    expect(spec.paths['/getImage'].get.responses['200'].content['image/png'].schema).toEqual({ type: 'string', format: 'binary' })
    expect((await call(app, 'GET', '/swagger')).text.toLowerCase()).toContain('swagger')
  })
})
