// storage on S3 as real processes: two instances on one s3rver serve each other's images; 100 MiB in bounded memory.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pngBytes } from '../helpers/image-store-contract.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { peakRssGrowth } from '../helpers/rss.ts'
import { type S3Server, startS3Server } from '../helpers/s3-server.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

// Processes start in well under a second; the margin is for a loaded CI machine and the 100 MiB round trip.
setDefaultTimeout(30_000)

const MiB = 1024 * 1024
const dir = tempDir('pixmill-e2e-storage-s3-')
const kvAddress = `127.0.0.1:${freePort()}`
const addresses = [`127.0.0.1:${freePort()}`, `127.0.0.1:${freePort()}`] as const
/** Each instance has a data folder of its own, for its log, and to show that it keeps no images there. */
const dataDirs = ['one', 'two'].map((name) => join(dir.path, name))
let s3: S3Server
let kv: RoleProcess
let storages: RoleProcess[] = []

beforeAll(async () => {
  s3 = await startS3Server()
  kv = await spawnRole('kv', [kvAddress], { dataDir: dir.path, healthAt: kvAddress })
  const env = { ...s3.env, PIXMILL_STORAGE_URL: s3.url, PIXMILL_MAX_UPLOAD_BYTES: String(101 * MiB) }
  storages = await Promise.all(
    addresses.map((address, i) => {
      mkdirSync(dataDirs[i]!)
      return spawnRole('storage', [address, kvAddress], { dataDir: dataDirs[i]!, healthAt: address, env })
    }),
  )
}, 30_000)
afterAll(async () => {
  await Promise.allSettled([kv?.kill9(), ...storages.map((storage) => storage.kill9())])
  await s3?.stop()
  dir.remove()
})

const [one, two] = addresses
const upload = (address: string, query: string, body: BodyInit) => httpText(address, `/sendImage?${query}`, { method: 'POST', body })
async function download(address: string, query: string, headers?: HeadersInit) {
  const response = await fetch(`http://${address}/getImage?${query}`, { headers })
  return { status: response.status, headers: response.headers, bytes: new Uint8Array(await response.arrayBuffer()) }
}

describe('e2e: storage on S3', () => {
  test('both instances say they keep the images in S3, and neither makes a storage folder', () => {
    for (const [i, storage] of storages.entries()) {
      expect(readFileSync(storage.logFile, 'utf8')).toContain('images kept in S3-compatible object storage')
      expect(existsSync(join(dataDirs[i]!, 'storage'))).toBe(false)
    }
  })

  test('an image sent through one instance is served by the other, with its ETag, 304 and ranges', async () => {
    const png = pngBytes(MiB + 12_345, 4)
    expect((await upload(one, 'id=1&state=finished', png)).text).toBe('success')
    const whole = await download(two, 'id=1&state=finished')
    expect(whole.status).toBe(200)
    expect(whole.bytes).toEqual(png)
    // Bun drops the Content-Length of a streamed body that has not arrived whole when it answers (oven-sh/bun#10507).
    expect([String(png.byteLength), null]).toContain(whole.headers.get('content-length'))
    expect(whole.headers.get('content-type')).toBe('image/png')
    const etag = whole.headers.get('etag')!
    expect(etag).toMatch(/^"[^"]+"$/)
    expect((await download(one, 'id=1&state=finished')).headers.get('etag')).toBe(etag)

    const cached = await download(two, 'id=1&state=finished', { 'if-none-match': etag })
    expect({ status: cached.status, length: cached.bytes.byteLength }).toEqual({ status: 304, length: 0 })
    const piece = await download(two, 'id=1&state=finished', { range: 'bytes=1048570-1048599', 'if-range': etag })
    expect({ status: piece.status, range: piece.headers.get('content-range') }).toEqual({ status: 206, range: `bytes 1048570-1048599/${png.byteLength}` })
    expect(piece.bytes).toEqual(png.slice(1048570, 1048600))
    expect((await download(two, 'id=1&state=finished', { range: 'bytes=-8' })).bytes).toEqual(png.slice(-8))
    expect((await download(two, 'id=1&state=finished', { range: `bytes=${png.byteLength - 5}-` })).bytes).toEqual(png.slice(-5))
    const stale = await download(two, 'id=1&state=finished', { range: 'bytes=0-9', 'if-range': '"stale"' })
    expect({ status: stale.status, length: stale.bytes.byteLength }).toEqual({ status: 200, length: png.byteLength })
    const beyond = await download(two, 'id=1&state=finished', { range: `bytes=${png.byteLength}-` })
    expect({ status: beyond.status, range: beyond.headers.get('content-range') }).toEqual({ status: 416, range: `bytes */${png.byteLength}` })
    expect((await download(one, 'id=2&state=finished')).status).toBe(404)
  })

  test('a 100 MiB upload grows its process by less than 64 MiB, the download from the other by less than 32 MiB', async () => {
    const file = join(dir.path, 'big.png')
    const writer = Bun.file(file).writer()
    const hash = new Bun.CryptoHasher('sha256')
    for (let i = 0; i < 100; i++) {
      const block = pngBytes(MiB, i)
      writer.write(block)
      hash.update(block)
    }
    await writer.end()
    const [first, second] = storages.map((storage) => storage.proc.pid)

    let started = performance.now()
    const up = await peakRssGrowth([first!], async () => (await upload(one, 'id=100&state=working', Bun.file(file))).text)
    const upMs = performance.now() - started
    expect(up.result).toBe('success')

    started = performance.now()
    const down = await peakRssGrowth([second!], async () => {
      const response = await fetch(`http://${two}/getImage?id=100&state=working`)
      const received = new Bun.CryptoHasher('sha256')
      for await (const chunk of response.body!) received.update(chunk)
      return { hash: received.digest('hex'), status: response.status }
    })
    const downMs = performance.now() - started
    console.info(
      `S3 (s3rver), 100 MiB: upload ${upMs.toFixed(0)} ms (${(100_000 / upMs).toFixed(0)} MiB/s), RSS +${(up.growth[0]! / MiB).toFixed(1)} MiB; ` +
        `download ${downMs.toFixed(0)} ms (${(100_000 / downMs).toFixed(0)} MiB/s), RSS +${(down.growth[0]! / MiB).toFixed(1)} MiB`,
    )
    expect(down.result).toEqual({ hash: hash.digest('hex'), status: 200 })
    // Bun holds the part being filled and queueSize parts going out (3 x 5 MiB), and frees the request's chunks late;
    // measured +38-52 MiB here (+62-65 without the store's collections), against +100 MiB or more if it were buffered.
    expect(up.growth[0]!).toBeLessThan(64 * MiB)
    expect(down.growth[0]!).toBeLessThan(32 * MiB)
    expect(s3.pendingUploads()).toEqual([])
  })

  test('while S3 is down an instance is unhealthy and answers 503; once S3 is back it serves again', async () => {
    const png = pngBytes(5000, 9)
    expect((await upload(one, 'id=3&state=working', png)).text).toBe('success')
    await s3.kill()
    try {
      const refused = await upload(one, 'id=4&state=working', png)
      expect(refused.status).toBe(503)
      expect(refused.text).toStartWith('Error: ')
      expect((await httpText(two, '/getImage?id=3&state=working')).status).toBe(503)
      await waitFor('/health to answer 503', async () => (await httpText(one, '/health')).status === 503, 5000, 50)
    } finally {
      await s3.restart()
    }
    await waitFor('/health to answer 200', async () => (await httpText(one, '/health')).status === 200, 5000, 50)
    expect((await download(two, 'id=3&state=working')).bytes).toEqual(png)
    expect((await upload(two, 'id=4&state=working', png)).text).toBe('success')
  })
})
