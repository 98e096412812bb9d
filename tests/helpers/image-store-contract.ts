// The contract every ImageStore must keep (file system now, S3 later); each implementation's test file runs it.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import type { ImageStore, StoredImage } from '../../src/roles/storage/image-store.ts'
import { BadRequest, PayloadTooLarge } from '../../src/shared/errors.ts'
import { ihdrChunk, signature } from './png.ts'
import { waitFor } from './wait-for.ts'

/** The signature and an IHDR (16x16 RGBA): what storage checks of a body before it stores it. */
const HEAD = Uint8Array.from([...signature(), ...ihdrChunk(16, 16, 8, 6)])
const LIMIT = { maxBytes: 8 * 1024 * 1024 }

/** `size` bytes starting with the PNG signature and a valid IHDR (as far as `size` goes), the rest a pattern that `seed` makes distinct. */
export function pngBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size)
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed * 17) & 0xff
  bytes.set(HEAD.subarray(0, size))
  return bytes
}

/** A stream of `bytes` in `chunk`-sized pieces; `failAfter` bytes, when given, it errors instead of going on. */
export function streamOf(bytes: Uint8Array, chunk = 64 * 1024, failAfter?: number): ReadableStream<Uint8Array> {
  let offset = 0
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (failAfter !== undefined && offset >= failAfter) return controller.error(new Error('the client went away'))
      if (offset >= bytes.byteLength) return controller.close()
      controller.enqueue(bytes.slice(offset, offset + chunk))
      offset += chunk
    },
  })
}

/** All the bytes of a stored image, whichever form its body has. */
export async function readImage(image: StoredImage): Promise<Uint8Array> {
  const buffer = image.body instanceof Blob ? await image.body.arrayBuffer() : await new Response(image.body).arrayBuffer()
  return new Uint8Array(buffer)
}

export interface ImageStoreEnv {
  /** A store over this environment's place; called again after close() to reopen the same place. */
  open(): ImageStore | Promise<ImageStore>
  cleanup(): void | Promise<void>
}

/** Runs the ImageStore contract against the store that `setup` gives, each test over a fresh place. */
export function imageStoreContract(name: string, setup: () => ImageStoreEnv | Promise<ImageStoreEnv>) {
  describe(`ImageStore contract: ${name}`, () => {
    let env: ImageStoreEnv
    let store: ImageStore
    beforeEach(async () => {
      env = await setup()
      store = await env.open()
    })
    afterEach(async () => {
      await store.close().catch(() => {})
      await env.cleanup()
    })
    const bytesOf = async (id: number, area: 'working' | 'finished') => {
      const image = await store.open(id, area)
      return image && readImage(image)
    }

    test('an image put can be opened again, byte for byte, with its size and a quoted ETag', async () => {
      const png = pngBytes(200_000)
      expect(await store.put(7, 'working', streamOf(png), LIMIT)).toEqual({ bytes: png.byteLength })
      const image = (await store.open(7, 'working'))!
      expect(image.size).toBe(png.byteLength)
      expect(image.etag).toMatch(/^"[^"]+"$/)
      expect(image.lastModified).toBeInstanceOf(Date)
      expect(await readImage(image)).toEqual(png)
    })

    test('an image never stored opens as undefined, and the two areas are kept apart', async () => {
      expect(await store.open(1, 'working')).toBeUndefined()
      await store.put(1, 'working', streamOf(pngBytes(100, 1)), LIMIT)
      await store.put(1, 'finished', streamOf(pngBytes(300, 2)), LIMIT)
      expect(await bytesOf(1, 'working')).toEqual(pngBytes(100, 1))
      expect(await bytesOf(1, 'finished')).toEqual(pngBytes(300, 2))
      expect(await store.open(2, 'working')).toBeUndefined()
    })

    test('a second put replaces the image and gives it a new ETag', async () => {
      await store.put(3, 'finished', streamOf(pngBytes(5000, 1)), LIMIT)
      const before = (await store.open(3, 'finished'))!.etag
      await store.put(3, 'finished', streamOf(pngBytes(5000, 2)), LIMIT)
      const after = (await store.open(3, 'finished'))!
      expect(await readImage(after)).toEqual(pngBytes(5000, 2))
      expect(after.etag).not.toBe(before)
    })

    test('a body over maxBytes is refused with PayloadTooLarge and leaves the old image as it was', async () => {
      await store.put(4, 'working', streamOf(pngBytes(1000, 1)), LIMIT)
      const refused = store.put(4, 'working', streamOf(pngBytes(300_000, 2)), { maxBytes: 200_000 })
      await expect(refused).rejects.toBeInstanceOf(PayloadTooLarge)
      expect(await bytesOf(4, 'working')).toEqual(pngBytes(1000, 1))
      await expect(store.put(5, 'working', streamOf(pngBytes(300_000)), { maxBytes: 200_000 })).rejects.toBeInstanceOf(PayloadTooLarge)
      expect(await store.open(5, 'working')).toBeUndefined()
    })

    test('a body exactly maxBytes long is accepted', async () => {
      expect(await store.put(6, 'working', streamOf(pngBytes(200_000)), { maxBytes: 200_000 })).toEqual({ bytes: 200_000 })
    })

    test('a body stream that breaks off halfway stores nothing and leaves the old image', async () => {
      await store.put(8, 'working', streamOf(pngBytes(1000, 1)), LIMIT)
      await expect(store.put(8, 'working', streamOf(pngBytes(500_000, 2), 64 * 1024, 256 * 1024), LIMIT)).rejects.toThrow('the client went away')
      await expect(store.put(9, 'working', streamOf(pngBytes(500_000, 2), 64 * 1024, 256 * 1024), LIMIT)).rejects.toThrow('the client went away')
      expect(await bytesOf(8, 'working')).toEqual(pngBytes(1000, 1))
      expect(await store.open(9, 'working')).toBeUndefined()
    })

    test('while a put is streaming, readers see the old image (or none), never a part of the new one', async () => {
      await store.put(10, 'working', streamOf(pngBytes(1000, 1)), LIMIT)
      let release!: () => void
      const gate = new Promise<void>((resolve) => (release = resolve))
      const next = pngBytes(400_000, 2)
      let sent = 0
      const slow = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 128 * 1024) await gate
          if (sent >= next.byteLength) return controller.close()
          controller.enqueue(next.slice(sent, sent + 64 * 1024))
          sent += 64 * 1024
        },
      })
      const putting = store.put(10, 'working', slow, LIMIT)
      const fresh = store.put(11, 'working', streamOf(next, 64 * 1024, 128 * 1024), LIMIT).catch(() => 'failed')
      await waitFor('the put to be held halfway', () => sent === 128 * 1024)
      expect(await bytesOf(10, 'working')).toEqual(pngBytes(1000, 1))
      expect(await fresh).toBe('failed')
      expect(await store.open(11, 'working')).toBeUndefined()
      release()
      await putting
      expect(await bytesOf(10, 'working')).toEqual(next)
    })

    test('concurrent puts to one key end with exactly one of the bodies, whole', async () => {
      const bodies = [1, 2, 3, 4, 5, 6].map((seed) => pngBytes(150_000 + seed * 1000, seed))
      await Promise.all(bodies.map((body) => store.put(12, 'finished', streamOf(body, 16 * 1024), LIMIT)))
      const stored = (await bytesOf(12, 'finished'))!
      expect(bodies.some((body) => Buffer.from(body).equals(stored))).toBe(true)
      if (store.stats) expect((await store.stats()).finished).toEqual({ images: 1, bytes: stored.byteLength })
    })

    test.each([
      ['a negative id', -1, 'working'],
      ['a fractional id', 1.5, 'working'],
      ['NaN', Number.NaN, 'working'],
      ['Infinity', Number.POSITIVE_INFINITY, 'working'],
      ['an id beyond the safe integers', 2 ** 53, 'working'],
      ['an area that climbs out', 1, '../working'],
      ['an area with a path in it', 1, 'working/../../etc'],
      ['an unknown area', 1, 'Working'],
      ['an empty area', 1, ''],
    ])('%s is refused with BadRequest by put, open and delete', async (_what, id, area) => {
      await expect(store.put(id, area as 'working', streamOf(pngBytes(100)), LIMIT)).rejects.toBeInstanceOf(BadRequest)
      await expect(store.open(id, area as 'working')).rejects.toBeInstanceOf(BadRequest)
      await expect(store.delete(id, area as 'working')).rejects.toBeInstanceOf(BadRequest)
    })

    test('delete removes one image of one area, tells its size, and is idempotent', async () => {
      await store.put(30, 'working', streamOf(pngBytes(700, 1)), LIMIT)
      await store.put(30, 'finished', streamOf(pngBytes(900, 2)), LIMIT)
      expect(await store.delete(30, 'working')).toEqual({ bytes: 700 })
      expect(await store.open(30, 'working')).toBeUndefined()
      expect(await bytesOf(30, 'finished')).toEqual(pngBytes(900, 2))
      expect(await store.delete(30, 'working')).toBeUndefined()
      expect(await store.delete(31, 'finished')).toBeUndefined()
      // A new image under the same key after a delete is a new image.
      await store.put(30, 'working', streamOf(pngBytes(50, 3)), LIMIT)
      expect(await bytesOf(30, 'working')).toEqual(pngBytes(50, 3))
    })

    test('a delete stays done after closing and opening the store again', async () => {
      await store.put(32, 'finished', streamOf(pngBytes(400)), LIMIT)
      await store.delete(32, 'finished')
      await store.close()
      store = await env.open()
      expect(await store.open(32, 'finished')).toBeUndefined()
    })

    test('concurrent deletes and puts of one key end with the key either empty or one whole image', async () => {
      const body = pngBytes(120_000, 4)
      await Promise.all([store.put(33, 'working', streamOf(body, 16 * 1024), LIMIT), store.delete(33, 'working'), store.delete(33, 'working')])
      const left = await bytesOf(33, 'working')
      if (left !== undefined) expect(left).toEqual(body)
    })

    test('stats, where the store keeps them, count images and bytes per area: a replacement once, a delete taken off', async () => {
      if (!store.stats) return
      expect(await store.stats()).toEqual({ working: { images: 0, bytes: 0 }, finished: { images: 0, bytes: 0 } })
      await store.put(1, 'working', streamOf(pngBytes(100)), LIMIT)
      await store.put(2, 'working', streamOf(pngBytes(200)), LIMIT)
      await store.put(2, 'working', streamOf(pngBytes(250)), LIMIT)
      await store.put(2, 'finished', streamOf(pngBytes(50)), LIMIT)
      expect(await store.stats()).toEqual({ working: { images: 2, bytes: 350 }, finished: { images: 1, bytes: 50 } })
      await store.delete(2, 'working')
      await store.delete(2, 'working')
      expect(await store.stats()).toEqual({ working: { images: 1, bytes: 100 }, finished: { images: 1, bytes: 50 } })
    })

    test('images and their counts survive closing and opening the store again', async () => {
      await store.put(20, 'finished', streamOf(pngBytes(3000, 9)), LIMIT)
      await store.close()
      store = await env.open()
      expect(await bytesOf(20, 'finished')).toEqual(pngBytes(3000, 9))
      if (store.stats) expect((await store.stats()).finished).toEqual({ images: 1, bytes: 3000 })
      expect(await store.healthy()).toBe(true)
    })
  })
}
