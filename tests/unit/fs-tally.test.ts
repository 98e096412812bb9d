// The file-system store's tally of images and bytes: exact across restarts, and across a crash in the middle of a change.
import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openTally } from '../../src/roles/storage/fs-tally.ts'
import { tempDir } from '../helpers/temp.ts'

const dirs: ReturnType<typeof tempDir>[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) dir.remove()
})
const fresh = () => {
  const dir = tempDir()
  dirs.push(dir)
  return dir.path
}
const reached = (change: { path: string }) => !existsSync(change.path)

describe('fs tally', () => {
  test('totals survive closing and opening again; a fresh tally says it did not exist', () => {
    const root = fresh()
    const tally = openTally(root, reached)
    expect(tally.existed).toBe(false)
    tally.begin({ op: 'put', area: 'working', path: join(root, 'gone.tmp'), imagesDelta: 1, bytesDelta: 500 })
    tally.begin({ op: 'put', area: 'finished', path: join(root, 'gone.tmp'), imagesDelta: 1, bytesDelta: 70 })
    tally.close()
    const again = openTally(root, reached)
    expect(again.existed).toBe(true)
    expect(again.stats()).toEqual({ working: { images: 1, bytes: 500 }, finished: { images: 1, bytes: 70 } })
    again.close()
  })

  test('a crash after the tally but before the rename (its temp file still there) is taken back at the next open', () => {
    const root = fresh()
    const temp = join(root, '.1.png.1.aa.tmp')
    writeFileSync(temp, 'complete but never renamed')
    const tally = openTally(root, reached)
    tally.begin({ op: 'put', area: 'working', path: temp, imagesDelta: 1, bytesDelta: 26 })
    // kill -9 here: the process never renames, never closes.
    const after = openTally(root, reached)
    expect(after.stats().working).toEqual({ images: 0, bytes: 0 })
    after.close()
    tally.close()
  })

  test('a crash after the rename (its temp file gone) keeps the change; a delete whose file is gone stays counted off', () => {
    const root = fresh()
    const tally = openTally(root, reached)
    tally.begin({ op: 'put', area: 'finished', path: join(root, 'renamed.tmp'), imagesDelta: 1, bytesDelta: 900 })
    tally.begin({ op: 'delete', area: 'finished', path: join(root, 'unlinked.png'), imagesDelta: -1, bytesDelta: -900 })
    const after = openTally(root, reached)
    expect(after.stats().finished).toEqual({ images: 0, bytes: 0 })
    after.close()
    tally.close()
  })

  test('undo takes a change back when its file-system step failed', () => {
    const root = fresh()
    const tally = openTally(root, reached)
    const change = { op: 'put', area: 'working', path: join(root, 'x.tmp'), imagesDelta: 1, bytesDelta: 10 } as const
    tally.begin(change)
    tally.undo(change)
    expect(tally.stats().working).toEqual({ images: 0, bytes: 0 })
    tally.close()
    const again = openTally(root, () => false)
    expect(again.stats().working).toEqual({ images: 0, bytes: 0 })
    again.close()
  })
})
