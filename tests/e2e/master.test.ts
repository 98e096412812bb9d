// kv, database, storage and master as real processes: the whole task cycle over sockets, and a 100 MiB upload in constant memory.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { PNG_SIGNATURE } from '../../src/shared/png-header.ts'
import { encodePng, ihdrChunk } from '../helpers/png.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { rawClient } from '../helpers/raw-client.ts'
import { generatedBody, peakRssGrowth } from '../helpers/rss.ts'
import { storedImages, tempFiles } from '../helpers/stored-files.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const dir = tempDir('pixmill-e2e-master-')
const at = () => `127.0.0.1:${freePort()}`
const kv = at()
const database = at()
const storage = at()
const master = at()
const UPLOAD_TIMEOUT_SECONDS = 3
const env = { PIXMILL_MAX_UPLOAD_BYTES: String(200 * 1024 * 1024), PIXMILL_UPLOAD_TIMEOUT_SECONDS: String(UPLOAD_TIMEOUT_SECONDS) }
const roles: RoleProcess[] = []

beforeAll(async () => {
  roles.push(await spawnRole('kv', [kv], { dataDir: dir.path, healthAt: kv, env }))
  roles.push(await spawnRole('database', [database, kv], { dataDir: dir.path, healthAt: database, env }))
  roles.push(await spawnRole('storage', [storage, kv], { dataDir: dir.path, healthAt: storage, env }))
  roles.push(await spawnRole('master', [master, kv], { dataDir: dir.path, healthAt: master, env }))
})
afterAll(async () => {
  await Promise.allSettled(roles.map((r) => r.kill9()))
  dir.remove()
})

const png = encodePng(
  4,
  3,
  2,
  8,
  Array.from({ length: 3 }, (_, y) => Array.from({ length: 4 }, (_, x) => [x * 60, y * 100, 9])),
)
const result = encodePng(
  4,
  3,
  6,
  8,
  Array.from({ length: 3 }, () => Array.from({ length: 4 }, () => [1, 2, 3, 255])),
)

describe('e2e: master with its peers', () => {
  test('every role registered itself in kv', async () => {
    const list = (await httpText(kv, '/list')).text
    for (const line of [`databaseAddress : ${database}`, `storageAddress : ${storage}`, `masterAddress : ${master}`]) expect(list).toContain(line)
  })

  test('upload, claim as a worker would, store the result, finish, download', async () => {
    const id = (await httpText(master, '/new', { method: 'POST', body: png, headers: { 'content-type': 'image/png' } })).text
    expect(id).toMatch(/^\d+$/)
    expect((await httpText(master, `/isReady?id=${id}`)).text).toBe('0')
    const claim = JSON.parse((await httpText(master, '/getNewTask', { method: 'POST' })).text)
    expect(claim.id).toBe(Number(id))
    const working = await fetch(`http://${storage}/getImage?id=${id}&state=working`)
    expect(new Uint8Array(await working.arrayBuffer())).toEqual(png)
    expect((await httpText(storage, `/sendImage?id=${id}&state=finished`, { method: 'POST', body: result })).text).toBe('success')
    expect((await httpText(master, `/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`, { method: 'POST' })).text).toBe('success')
    expect((await httpText(master, `/isReady?id=${id}`)).text).toBe('1')
    const download = await fetch(`http://${master}/get?id=${id}`)
    expect(download.status).toBe(200)
    expect(download.headers.get('content-type')).toBe('image/png')
    // No Content-Length assertion: Bun frames a proxied stream as chunked unless it arrived whole (oven-sh/bun#10507).
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(result)
  })
})

describe('e2e: uploads the master passes to storage unread', () => {
  // The tests above have stored images through this master: it passes uploads with Content-Length on unread.
  const tasks = async () => (await httpText(database, '/list')).text.trim().split('\n').filter(Boolean).length
  const images = () => storedImages(join(dir.path, 'storage'))
  const storageRefusals = async () =>
    Number(/^pixmill_storage_uploads_rejected_total\{reason="not_png"[^}]*\} (\d+)$/m.exec((await httpText(storage, '/metrics')).text)?.[1] ?? 0)
  const tempFilesNow = () => tempFiles(join(dir.path, 'storage'))
  /** A raw client that announced a 1 MiB PNG and sent its valid header and `sent` bytes more: the rest never comes. */
  async function partialUpload(sent: number) {
    const client = await rawClient(master)
    client.write(`POST /new HTTP/1.1\r\nHost: master\r\nContent-Type: image/png\r\nContent-Length: ${1024 * 1024}\r\n\r\n`)
    client.write(new Uint8Array([...PNG_SIGNATURE, ...ihdrChunk(512, 512, 8, 6), ...new Uint8Array(sent)]))
    return client
  }

  test('a body that is not a PNG gets the master’s answer from storage; no task and no image are left', async () => {
    const [before, stored, refusedByStorage] = [await tasks(), images(), await storageRefusals()]
    const bad = new Uint8Array([...PNG_SIGNATURE, ...new Uint8Array(64 * 1024).fill(7)])
    const got = await httpText(master, '/new', { method: 'POST', body: bad, headers: { 'content-type': 'image/png' } })
    expect(got.status).toBe(400)
    expect(got.text).toBe('Error: Not a valid PNG: the PNG does not start with a valid IHDR chunk.')
    // Storage read the body and refused it: the master did not read it first.
    expect(await storageRefusals()).toBe(refusedByStorage + 1)
    expect(await tasks()).toBe(before)
    expect(images()).toEqual(stored)
  })

  test('a client gone midway leaves no task, no image and no temporary file', async () => {
    const [before, stored] = [await tasks(), images()]
    const client = await partialUpload(200 * 1024)
    await waitFor('the upload to reach storage', () => tempFilesNow().length > 0)
    client.end()
    await client.closed
    await waitFor('storage to drop the broken upload', () => tempFilesNow().length === 0)
    await waitFor('the reserved task to be dropped', async () => (await tasks()) === before)
    expect(images()).toEqual(stored)
  })

  test('a body that stops coming gets 408 after PIXMILL_UPLOAD_TIMEOUT_SECONDS; no task and no image are left', async () => {
    const [before, stored] = [await tasks(), images()]
    const { text, afterMs } = await (await partialUpload(100 * 1024)).closed
    expect(text).toStartWith('HTTP/1.1 408')
    expect(text).toContain('Error:')
    expect(afterMs).toBeLessThan(UPLOAD_TIMEOUT_SECONDS * 1000 + 4000)
    expect(await tasks()).toBe(before)
    await waitFor('storage to drop the broken upload', () => tempFilesNow().length === 0)
    expect(images()).toEqual(stored)
  })
})

describe('e2e: master with its peers, storage moved', () => {
  test('storage restarted on another address: the master looks it up again and a download goes through', async () => {
    const id = (await httpText(master, '/new', { method: 'POST', body: png })).text
    const claim = JSON.parse((await httpText(master, '/getNewTask', { method: 'POST' })).text)
    expect(claim.id).toBe(Number(id))
    await httpText(storage, `/sendImage?id=${id}&state=finished`, { method: 'POST', body: result })
    await httpText(master, `/registerTaskFinished?id=${id}`, { method: 'POST' })
    await roles[2]!.kill9()
    const moved = `127.0.0.1:${freePort()}`
    roles[2] = await spawnRole('storage', [moved, kv], { dataDir: dir.path, healthAt: moved, env })
    expect((await httpText(kv, '/get?key=storageAddress')).text).toBe(moved)
    const download = await fetch(`http://${master}/get?id=${id}`)
    expect(download.status).toBe(200)
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(result)
    const upload = await httpText(master, '/new', { method: 'POST', body: png })
    expect(upload.status).toBe(200)
    const stored = await fetch(`http://${moved}/getImage?id=${upload.text}&state=working`)
    expect(new Uint8Array(await stored.arrayBuffer())).toEqual(png)
  })

  test('a 100 MiB upload streams through master and storage: neither grows by 32 MiB', async () => {
    const head = new Uint8Array([...PNG_SIGNATURE, ...ihdrChunk(8000, 8000, 8, 6)])
    const total = 100 * 1024 * 1024
    const pids = [roles[2]!.proc.pid, roles[3]!.proc.pid]
    const storageAddress = (await httpText(kv, '/get?key=storageAddress')).text
    const { result: answer, growth } = await peakRssGrowth(pids, async () => {
      const response = await fetch(`http://${master}/new`, {
        method: 'POST',
        body: generatedBody(head, total),
        headers: { 'content-type': 'image/png', 'content-length': String(total) },
      })
      return { status: response.status, text: await response.text() }
    })
    expect(answer.status).toBe(200)
    const stored = await fetch(`http://${storageAddress}/getImage?id=${answer.text}&state=working`)
    expect(stored.headers.get('content-length')).toBe(String(total))
    await stored.body?.cancel()
    console.log(`100 MiB upload, RSS growth: storage ${(growth[0]! / 2 ** 20).toFixed(1)} MiB, master ${(growth[1]! / 2 ** 20).toFixed(1)} MiB`)
    expect(growth[0]!).toBeLessThan(32 * 2 ** 20)
    expect(growth[1]!).toBeLessThan(32 * 2 ** 20)
  })
})
