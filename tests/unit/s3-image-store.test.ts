// The S3 image store against the ImageStore contract on a real s3rver, plus what only S3 brings: multipart uploads, S3 down.
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { S3Client } from 'bun'
import type { ImageStore } from '../../src/roles/storage/image-store.ts'
import { openS3ImageStore, parseS3Url, type S3ImageStoreOptions } from '../../src/roles/storage/s3-image-store.ts'
import { DependencyUnavailable, PayloadTooLarge } from '../../src/shared/errors.ts'
import { imageStoreContract, pngBytes, readImage, streamOf } from '../helpers/image-store-contract.ts'
import { manualClock } from '../helpers/manual-clock.ts'
import { type S3Server, startS3Server } from '../helpers/s3-server.ts'
import { waitFor } from '../helpers/wait-for.ts'

const MiB = 1024 * 1024
let server: S3Server
beforeAll(async () => {
  server = await startS3Server()
})
afterAll(() => server?.stop())

/** Each store gets a prefix of its own in the one bucket: a fresh place without a fresh server. */
let places = 0
const freshUrl = () => `${server.url}-${++places}`
const openAt = (url: string, options: S3ImageStoreOptions = {}) => openS3ImageStore(url, { client: server.client, ...options })

imageStoreContract('S3 (s3rver)', () => {
  const url = freshUrl()
  return { open: () => openAt(url), cleanup: () => {} }
})

/**
 * An S3 endpoint that answers the store's LIST probe and a HEAD, and holds every request for an image whose method is
 * in `hang` unanswered until stopped: S3 hung, for the time-outs. `seen` has the methods of the image requests.
 */
function hungS3(hang: string[]) {
  const seen: string[] = []
  const held: (() => void)[] = []
  const listing =
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>hung</Name><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>'
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch(request) {
      if (!new URL(request.url).pathname.endsWith('.png')) return new Response(listing, { headers: { 'content-type': 'application/xml' } })
      seen.push(request.method)
      if (hang.includes(request.method)) return new Promise<Response>((resolve) => held.push(() => resolve(new Response(null, { status: 500 }))))
      return new Response(null, { headers: { 'content-length': '42', etag: '"e"' } })
    },
  })
  return {
    client: { endpoint: `http://127.0.0.1:${server.port}`, accessKeyId: 'HUNG', secretAccessKey: 'HUNG', region: 'us-east-1' },
    seen,
    stop() {
      for (const release of held.splice(0)) release()
      server.stop(true)
    },
  }
}

/** Whether `promise` has settled yet, without waiting for it. */
function settledFlag(promise: Promise<unknown>): () => boolean {
  let settled = false
  promise.then(
    () => (settled = true),
    () => (settled = true),
  )
  return () => settled
}

describe('S3 image store', () => {
  const stores: ImageStore[] = []
  const open = async (url = freshUrl(), options: S3ImageStoreOptions = {}) => {
    const store = await openAt(url, options)
    stores.push(store)
    return store
  }
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()))
  })
  const bucket = () => new S3Client({ ...server.client, bucket: parseS3Url(server.url).bucket })

  test('parses s3://bucket/prefix, with or without a prefix, and refuses a URL without a bucket', () => {
    expect(parseS3Url('s3://images/pixmill/prod/')).toEqual({ bucket: 'images', root: 'pixmill/prod/' })
    expect(parseS3Url('s3://images')).toEqual({ bucket: 'images', root: '' })
    expect(() => parseS3Url('s3:///pixmill')).toThrow('PIXMILL_STORAGE_URL')
  })

  test('keeps each image at <prefix>/<area>/<id>.png as image/png', async () => {
    const url = freshUrl()
    const store = await open(url)
    await store.put(17, 'finished', streamOf(pngBytes(100)), { maxBytes: MiB })
    const stat = await bucket()
      .file(`${parseS3Url(url).root}finished/17.png`)
      .stat()
    expect({ size: stat.size, type: stat.type }).toEqual({ size: 100, type: 'image/png' })
  })

  test('an upload broken off after several parts leaves no object and no multipart upload, and the old image', async () => {
    const store = await open()
    await store.put(1, 'working', streamOf(pngBytes(1000, 1)), { maxBytes: 64 * MiB })
    for (const id of [1, 2]) {
      const broken = store.put(id, 'working', streamOf(pngBytes(16 * MiB, 2), 256 * 1024, 12 * MiB), { maxBytes: 64 * MiB })
      await expect(broken).rejects.toThrow('the client went away')
    }
    // Bun answers a failed upload before its abort of the multipart upload has come back.
    await waitFor('the multipart uploads to be aborted', () => server.pendingUploads().length === 0)
    expect(await readImage((await store.open(1, 'working'))!)).toEqual(pngBytes(1000, 1))
    expect(await store.open(2, 'working')).toBeUndefined()
  })

  test('an upload over the limit is refused once it passes it, leaving no object and no multipart upload', async () => {
    const store = await open()
    await store.put(3, 'working', streamOf(pngBytes(1000, 1)), { maxBytes: 64 * MiB })
    let pulled = 0
    const body = streamOf(pngBytes(24 * MiB, 2), 256 * 1024).pipeThrough(
      new TransformStream({
        transform: (chunk, out) => {
          pulled += chunk.byteLength
          out.enqueue(chunk)
        },
      }),
    )
    await expect(store.put(3, 'working', body, { maxBytes: 11 * MiB })).rejects.toBeInstanceOf(PayloadTooLarge)
    expect(pulled).toBeLessThan(16 * MiB)
    await expect(store.put(4, 'working', streamOf(pngBytes(24 * MiB, 3), 256 * 1024), { maxBytes: 11 * MiB })).rejects.toBeInstanceOf(PayloadTooLarge)
    await waitFor('the multipart uploads to be aborted', () => server.pendingUploads().length === 0)
    expect(await readImage((await store.open(3, 'working'))!)).toEqual(pngBytes(1000, 1))
    expect(await store.open(4, 'working')).toBeUndefined()
  })

  test('readers during replacements (single PUT and multipart) see a whole image, its size and ETag its own', async () => {
    const store = await open()
    const images = [pngBytes(300_000, 1), pngBytes(6 * MiB, 2)]
    const known = images.map((image) => Bun.hash(image))
    await store.put(5, 'finished', streamOf(images[0]!), { maxBytes: 8 * MiB })
    const tags = new Map<string, bigint | number>()
    let writing = true
    let reads = 0
    const reader = async () => {
      while (writing) {
        const image = (await store.open(5, 'finished'))!
        const bytes = await readImage(image)
        expect(known).toContain(Bun.hash(bytes))
        expect(image.size).toBe(bytes.byteLength)
        // One ETag must never be seen with two different bodies.
        expect(tags.get(image.etag) ?? Bun.hash(bytes)).toBe(Bun.hash(bytes))
        tags.set(image.etag, Bun.hash(bytes))
        reads++
      }
    }
    const readers = [reader(), reader(), reader()]
    for (let i = 1; i <= 8; i++) await store.put(5, 'finished', streamOf(images[i % 2]!, 256 * 1024), { maxBytes: 8 * MiB })
    writing = false
    await Promise.all(readers)
    expect(reads).toBeGreaterThan(8)
    expect(tags.size).toBe(2)
  })

  test('opening reads nothing of the bucket but one key, and keeps no count: the bucket’s size is the object store’s figure', async () => {
    const url = freshUrl()
    const { root } = parseS3Url(url)
    for (let id = 0; id < 5; id++) await bucket().write(`${root}working/${id}.png`, pngBytes(100 + id))
    const store = await open(url)
    expect(store.stats).toBeUndefined()
    expect(await readImage((await store.open(4, 'working'))!)).toEqual(pngBytes(104))
    expect(await store.delete(4, 'working')).toEqual({ bytes: 104 })
    expect(await bucket().exists(`${root}working/4.png`)).toBe(false)
  })

  test('while S3 is down: DependencyUnavailable and unhealthy; once it is back: healthy, the images all there', async () => {
    const store = await open(freshUrl(), { healthCacheMs: 0 })
    await store.put(6, 'working', streamOf(pngBytes(2000)), { maxBytes: MiB })
    expect(await store.healthy()).toBe(true)
    await server.kill()
    try {
      await expect(store.put(7, 'working', streamOf(pngBytes(2000)), { maxBytes: MiB })).rejects.toBeInstanceOf(DependencyUnavailable)
      await expect(store.put(7, 'working', streamOf(pngBytes(6 * MiB), 256 * 1024), { maxBytes: 8 * MiB })).rejects.toBeInstanceOf(DependencyUnavailable)
      await expect(store.open(6, 'working')).rejects.toBeInstanceOf(DependencyUnavailable)
      expect(await store.healthy()).toBe(false)
      await expect(openAt(freshUrl())).rejects.toBeInstanceOf(DependencyUnavailable)
    } finally {
      await server.restart()
    }
    expect(await store.healthy()).toBe(true)
    expect(await readImage((await store.open(6, 'working'))!)).toEqual(pngBytes(2000))
  })

  test('healthy() answers its last result for healthCacheMs on the store’s clock, then asks S3 again', async () => {
    const clock = manualClock()
    // s3rver takes any folder in its data folder for a bucket.
    const folder = join(server.directory, 'cached-health')
    mkdirSync(folder)
    const store = await open('s3://cached-health/pixmill', { healthCacheMs: 1000, clock })
    rmSync(folder, { recursive: true })
    expect(await store.healthy()).toBe(true)
    await clock.advance(999)
    expect(await store.healthy()).toBe(true)
    await clock.advance(1)
    expect(await store.healthy()).toBe(false)
    mkdirSync(folder)
    expect(await store.healthy()).toBe(false)
    await clock.advance(1000)
    expect(await store.healthy()).toBe(true)
  })

  test('a GET, a HEAD or a DELETE that S3 does not answer fails as DependencyUnavailable at requestTimeoutMs on the store’s clock', async () => {
    const clock = manualClock()
    for (const [method, call] of [
      ['GET', (store: ImageStore) => store.open(1, 'working')],
      ['HEAD', (store: ImageStore) => store.delete(1, 'working')],
      ['DELETE', (store: ImageStore) => store.delete(1, 'working')],
    ] as const) {
      const s3 = hungS3([method])
      try {
        const store = await openS3ImageStore('s3://hung/pixmill', { client: s3.client, requestTimeoutMs: 60_000, healthCacheMs: 600_000, clock })
        const failing = call(store)
        const settled = settledFlag(failing)
        failing.catch(() => {})
        await waitFor(`the ${method} to reach S3`, () => s3.seen.includes(method))
        await clock.advance(59_999)
        expect(settled(), method).toBe(false)
        await clock.advance(1)
        // An aborted fetch rejects from the network side: a poll, and no real timer could run out before its deadline.
        await waitFor(`the ${method} to give up`, settled, 10_000)
        await expect(failing).rejects.toBeInstanceOf(DependencyUnavailable)
        // A failed request counts against the health at once, cache or not.
        expect(await store.healthy(), method).toBe(false)
      } finally {
        s3.stop()
      }
    }
  })

  test('a bucket that is not there, or a key S3 refuses, is DependencyUnavailable, not a missing image', async () => {
    await expect(openAt('s3://no-such-bucket/pixmill')).rejects.toBeInstanceOf(DependencyUnavailable)
    // s3rver checks the access key id but not a SigV4 signature, so a wrong secret would pass here.
    await expect(openAt(freshUrl(), { client: { ...server.client, accessKeyId: 'WRONG' } })).rejects.toBeInstanceOf(DependencyUnavailable)
  })

  test('a bucket that goes away makes reads and writes DependencyUnavailable, not a missing image', async () => {
    // s3rver takes any folder in its data folder for a bucket.
    const folder = join(server.directory, 'short-lived')
    mkdirSync(folder)
    const store = await open('s3://short-lived/pixmill')
    rmSync(folder, { recursive: true })
    await expect(store.open(1, 'working')).rejects.toBeInstanceOf(DependencyUnavailable)
    await expect(store.put(1, 'working', streamOf(pngBytes(10)), { maxBytes: MiB })).rejects.toBeInstanceOf(DependencyUnavailable)
    expect(await store.healthy()).toBe(false)
  })

  test('a closed store refuses puts and reports itself unhealthy', async () => {
    const store = await open()
    await store.close()
    expect(await store.healthy()).toBe(false)
    await expect(store.put(1, 'working', streamOf(pngBytes(10)), { maxBytes: MiB })).rejects.toBeInstanceOf(DependencyUnavailable)
  })
})
