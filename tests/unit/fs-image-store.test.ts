// The file-system image store against the ImageStore contract, plus its own details: layout, temp files, folders gone.
import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openFsImageStore } from '../../src/roles/storage/fs-image-store.ts'
import { DependencyUnavailable } from '../../src/shared/errors.ts'
import { imageStoreContract, pngBytes, readImage, streamOf } from '../helpers/image-store-contract.ts'
import { tempDir } from '../helpers/temp.ts'

const LIMIT = { maxBytes: 1024 * 1024 }

imageStoreContract('file system', () => {
  const dir = tempDir()
  return { open: () => openFsImageStore(join(dir.path, 'storage')), cleanup: dir.remove }
})

imageStoreContract('file system with a hot-image cache', () => {
  const dir = tempDir()
  return { open: () => openFsImageStore(join(dir.path, 'storage'), { cacheBytes: 8 * 1024 * 1024 }), cleanup: dir.remove }
})

imageStoreContract('file system, durability process (no fsync)', () => {
  const dir = tempDir()
  return { open: () => openFsImageStore(join(dir.path, 'storage'), { durability: 'process' }), cleanup: dir.remove }
})

/** Every image file and temp file under the store, as paths below it (the tally left out). */
function listing(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[]).filter((path) => statSync(join(root, path)).isFile() && !path.startsWith('tally.sqlite')).sort()
}

describe('file-system image store', () => {
  // Removed after each test, passed or failed.
  const dirs: ReturnType<typeof tempDir>[] = []
  const freshDir = () => {
    const dir = tempDir()
    dirs.push(dir)
    return dir
  }
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.remove()
  })

  test('keeps <root>/<area>/<id / 10^6>/<id / 1000 mod 1000>/<id>.png and nothing else once puts are done, failed ones included', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    const store = openFsImageStore(root)
    await store.put(0, 'working', streamOf(pngBytes(10)), LIMIT)
    await store.put(17, 'finished', streamOf(pngBytes(10)), LIMIT)
    await store.put(17, 'finished', streamOf(pngBytes(2_000_000)), LIMIT).catch(() => {})
    await store.put(18, 'finished', streamOf(pngBytes(300_000), 64 * 1024, 128 * 1024), LIMIT).catch(() => {})
    await store.put(1_234_567, 'working', streamOf(pngBytes(10)), LIMIT)
    expect(listing(root)).toEqual(['finished/0/0/17.png', 'working/0/0/0.png', 'working/1/234/1234567.png'])
    expect(readdirSync(dir.path)).toEqual(['storage'])
  })

  test('an id or area that could leave the folder creates nothing anywhere', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    const store = openFsImageStore(root)
    for (const [id, area] of [
      [-1, 'working'],
      [1, '../..'],
      [1, '../../x'],
      [1.5, 'working'],
    ] as const) {
      await store.put(id, area as 'working', streamOf(pngBytes(10)), LIMIT).catch(() => {})
    }
    expect(listing(root)).toEqual([])
    expect(readdirSync(dir.path)).toEqual(['storage'])
  })

  test('at start it removes temp files of dead writers and of its own earlier life, and keeps live ones', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    mkdirSync(join(root, 'tmp'), { recursive: true })
    const live = Bun.spawn(['sleep', '5'])
    const names = {
      own: `.1.png.${process.pid}.aa.tmp`,
      dead: '.2.png.2147483646.bb.tmp',
      live: `.3.png.${live.pid}.cc.tmp`,
      liveButOld: `.4.png.${live.pid}.dd.tmp`,
    }
    for (const name of Object.values(names)) writeFileSync(join(root, 'tmp', name), 'partial')
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000)
    utimesSync(join(root, 'tmp', names.liveButOld), twoDaysAgo, twoDaysAgo)
    const store = openFsImageStore(root)
    live.kill()
    expect(listing(root)).toEqual([`tmp/${names.live}`])
    await store.close()
  })

  test('a folder of the flat layout of earlier versions: read at once, moved into shards in the background, counted', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    mkdirSync(join(root, 'working'), { recursive: true })
    mkdirSync(join(root, 'finished'), { recursive: true })
    for (let id = 0; id < 450; id++) writeFileSync(join(root, 'working', `${id}.png`), pngBytes(10 + (id % 7), id))
    writeFileSync(join(root, 'finished', '5.png'), pngBytes(40))
    writeFileSync(join(root, 'working', '.9.png.2147483646.bb.tmp'), 'a dead writer’s')
    const store = openFsImageStore(root)
    // Before, while and after they move: every image is found, and a put or delete meanwhile wins over the old file.
    expect(await readImage((await store.open(449, 'working'))!)).toEqual(pngBytes(10 + (449 % 7), 449))
    await store.put(448, 'working', streamOf(pngBytes(99, 1)), LIMIT)
    await store.delete(447, 'working')
    await store.close()
    const again = openFsImageStore(root)
    expect(await readImage((await again.open(448, 'working'))!)).toEqual(pngBytes(99, 1))
    expect(await again.open(447, 'working')).toBeUndefined()
    expect(await readImage((await again.open(5, 'finished'))!)).toEqual(pngBytes(40))
    // The move goes on in the background after the reopening; on a loaded machine it may take a moment.
    const leftOver = () => listing(root).filter((path) => !/^(working|finished)\/\d+\/\d+\/\d+\.png$/.test(path))
    for (const deadline = performance.now() + 10_000; leftOver().length > 0 && performance.now() < deadline; ) await Bun.sleep(10)
    expect(leftOver()).toEqual([])
    let bytes = 99
    for (let id = 0; id < 447; id++) bytes += 10 + (id % 7)
    bytes += 10 + (449 % 7)
    expect(await again.stats!()).toEqual({ working: { images: 449, bytes }, finished: { images: 1, bytes: 40 } })
    await again.close()
  })

  test('a store whose tally was deleted counts its shards once at start', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    const store = openFsImageStore(root)
    await store.put(3, 'working', streamOf(pngBytes(30)), LIMIT)
    await store.put(2_000_001, 'finished', streamOf(pngBytes(70)), LIMIT)
    await store.close()
    for (const name of readdirSync(root)) if (name.startsWith('tally.sqlite')) rmSync(join(root, name))
    const reopened = openFsImageStore(root)
    expect(await reopened.stats!()).toEqual({ working: { images: 1, bytes: 30 }, finished: { images: 1, bytes: 70 } })
    await reopened.close()
  })

  test('while its folder is gone it is unhealthy and answers DependencyUnavailable, and recovers when it is back', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    const store = openFsImageStore(root)
    await store.put(1, 'working', streamOf(pngBytes(100)), LIMIT)
    expect(await store.healthy()).toBe(true)
    renameSync(dir.path, `${dir.path}.gone`)
    try {
      expect(await store.healthy()).toBe(false)
      await expect(store.put(2, 'working', streamOf(pngBytes(100)), LIMIT)).rejects.toBeInstanceOf(DependencyUnavailable)
      await expect(store.open(1, 'working')).rejects.toBeInstanceOf(DependencyUnavailable)
      // It does not quietly start an empty store in its place.
      expect(existsSync(root)).toBe(false)
    } finally {
      renameSync(`${dir.path}.gone`, dir.path)
    }
    expect(await store.healthy()).toBe(true)
    expect(await readImage((await store.open(1, 'working'))!)).toEqual(pngBytes(100))
  })

  test('the ETag changes with every replacement, even by a body of the same size', async () => {
    const dir = freshDir()
    const store = openFsImageStore(join(dir.path, 'storage'))
    const tags = new Set<string>()
    for (let i = 0; i < 5; i++) {
      await store.put(1, 'working', streamOf(pngBytes(100, i)), LIMIT)
      tags.add((await store.open(1, 'working'))!.etag)
    }
    expect(tags.size).toBe(5)
  })

  test('the hot-image cache: an image read twice is served from memory after, never once it was replaced or removed', async () => {
    const dir = freshDir()
    const root = join(dir.path, 'storage')
    const store = openFsImageStore(root, { cacheBytes: 1024 * 1024 })
    // A Blob that is a file has its path as name; one in memory has none.
    const fromFile = async (id: number) => {
      const image = (await store.open(id, 'finished'))!
      return { image, file: (image.body as { name?: string }).name !== undefined }
    }
    await store.put(1, 'finished', streamOf(pngBytes(50_000, 1)), LIMIT)
    // Most images are read once: the first read is sent from the file, the second is kept and the third finds it.
    const first = await fromFile(1)
    const second = await fromFile(1)
    const third = await fromFile(1)
    expect([first.file, second.file, third.file]).toEqual([true, false, false])
    expect(third.image.etag).toBe(first.image.etag)
    expect(await readImage(third.image)).toEqual(pngBytes(50_000, 1))
    // Replaced through the store: the new bytes, from the file again until read twice.
    await store.put(1, 'finished', streamOf(pngBytes(50_000, 2)), LIMIT)
    const replaced = await fromFile(1)
    expect(replaced.file).toBe(true)
    expect(await readImage(replaced.image)).toEqual(pngBytes(50_000, 2))
    expect(await readImage((await fromFile(1)).image)).toEqual(pngBytes(50_000, 2))
    expect((await fromFile(1)).file).toBe(false)
    // Replaced behind the store's back (another process, an operator): the tag tells, the file is read again.
    writeFileSync(join(root, 'finished', '0', '0', '1.png'), pngBytes(50_000, 3))
    expect(await readImage((await store.open(1, 'finished'))!)).toEqual(pngBytes(50_000, 3))
    expect(await readImage((await store.open(1, 'finished'))!)).toEqual(pngBytes(50_000, 3))
    await store.delete(1, 'finished')
    expect(await store.open(1, 'finished')).toBeUndefined()
    // An image over an eighth of the budget is always sent from its file.
    await store.put(2, 'finished', streamOf(pngBytes(200_000)), LIMIT)
    for (let i = 0; i < 3; i++) expect((await fromFile(2)).file).toBe(true)
    await store.close()
  })

  test('a closed store refuses puts and reports itself unhealthy', async () => {
    const dir = freshDir()
    const store = openFsImageStore(join(dir.path, 'storage'))
    await store.close()
    expect(await store.healthy()).toBe(false)
    await expect(store.put(1, 'working', streamOf(pngBytes(10)), LIMIT)).rejects.toBeInstanceOf(DependencyUnavailable)
  })
})
