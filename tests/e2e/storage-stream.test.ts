// storage as a real process: a 100 MiB upload in bounded memory, broken-off and concurrent uploads, 413s, kill -9.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { pngBytes } from '../helpers/image-store-contract.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { tempFiles } from '../helpers/stored-files.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

// Processes start in well under a second and the whole file takes a few; the margin is for a loaded CI machine.
setDefaultTimeout(20_000)

const MiB = 1024 * 1024
const dir = tempDir('pixmill-e2e-storage-')
const smallDir = tempDir('pixmill-e2e-storage-small-')
const kvAddress = `127.0.0.1:${freePort()}`
const address = `127.0.0.1:${freePort()}`
const smallAddress = `127.0.0.1:${freePort()}`
let kv: RoleProcess
let storage: RoleProcess
let small: RoleProcess

const startStorage = () =>
  spawnRole('storage', [address, kvAddress], { dataDir: dir.path, healthAt: address, env: { PIXMILL_MAX_UPLOAD_BYTES: String(101 * MiB) } })

beforeAll(async () => {
  kv = await spawnRole('kv', [kvAddress], { dataDir: dir.path, healthAt: kvAddress })
  // The small one registers first, so that `storageAddress` ends up naming the main one.
  small = await spawnRole('storage', [smallAddress, kvAddress], {
    dataDir: smallDir.path,
    healthAt: smallAddress,
    env: { PIXMILL_MAX_UPLOAD_BYTES: String(MiB) },
  })
  storage = await startStorage()
}, 30_000)
afterAll(async () => {
  await Promise.allSettled([kv?.kill9(), storage?.kill9(), small?.kill9()])
  dir.remove()
  smallDir.remove()
})

/** VmRSS and VmHWM (peak) of a process, in bytes. */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) * 1024
  return { rss: kib('VmRSS'), peak: kib('VmHWM') }
}

/**
 * Runs `work` while watching the process's resident memory; returns how far it rose above where it started. The
 * kernel's own peak (VmHWM, reset first through clear_refs) catches spikes between two samples.
 */
async function rssGrowth(pid: number, work: () => Promise<void>): Promise<number> {
  const before = memory(pid).rss
  let peakResettable = true
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5') // resets VmHWM, so the peak is this work's
  } catch {
    peakResettable = false
  }
  let sampled = before
  const timer = setInterval(() => (sampled = Math.max(sampled, memory(pid).rss)), 5)
  try {
    await work()
  } finally {
    clearInterval(timer)
  }
  const peak = Math.max(sampled, memory(pid).rss, peakResettable ? memory(pid).peak : 0)
  return peak - before
}

const tempsBelow = (root = dir.path) => tempFiles(join(root, 'storage'))

/** A raw HTTP upload that sends its headers and `first` bytes of a body announced as `length` bytes, then waits. */
function startUpload(target: string, query: string, length: number, first: Uint8Array): Promise<Socket> {
  const [host, port] = target.split(':')
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), host!, () => {
      socket.write(`POST /sendImage?${query} HTTP/1.1\r\nHost: ${target}\r\nContent-Length: ${length}\r\n\r\n`)
      socket.write(first, () => resolve(socket))
    })
    socket.on('error', reject)
  })
}

/** The status and body of the answer a raw socket gets (complete once Content-Length bytes of body arrived). */
function answerOf(socket: Socket): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let data = ''
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1')
      const end = data.indexOf('\r\n\r\n')
      const length = /\r\ncontent-length: (\d+)/i.exec(data.slice(0, end))
      if (end < 0 || !length || data.length < end + 4 + Number(length[1])) return
      socket.destroy()
      resolve({ status: Number(data.split(' ')[1]), body: data.slice(end + 4, end + 4 + Number(length[1])) })
    })
    socket.on('close', () => reject(new Error(`the connection closed before a whole answer: ${JSON.stringify(data)}`)))
  })
}

const upload = (target: string, query: string, body: BodyInit) => httpText(target, `/sendImage?${query}`, { method: 'POST', body })
async function download(query: string): Promise<{ status: number; bytes: Uint8Array; headers: Headers }> {
  const response = await fetch(`http://${address}/getImage?${query}`)
  return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()), headers: response.headers }
}

describe('e2e: storage streams', () => {
  test('storage registers its address in kv', async () => {
    expect(await httpText(kvAddress, '/get?key=storageAddress')).toMatchObject({ status: 200, text: address })
  })

  test('a 100 MiB upload streams to disk with the process growing by less than 32 MiB, and comes back whole', async () => {
    const file = join(dir.path, 'big.png')
    const writer = Bun.file(file).writer()
    const hash = new Bun.CryptoHasher('sha256')
    for (let i = 0; i < 100; i++) {
      const block = pngBytes(MiB, i)
      writer.write(block)
      hash.update(block)
    }
    await writer.end()
    const digest = hash.digest('hex')

    let answer = ''
    const started = performance.now()
    const upGrowth = await rssGrowth(storage.proc.pid, async () => {
      answer = (await upload(address, 'id=100&state=working', Bun.file(file))).text
    })
    const upMs = performance.now() - started
    expect(answer).toBe('success')

    let got = { hash: '', length: '' }
    const downStarted = performance.now()
    const downGrowth = await rssGrowth(storage.proc.pid, async () => {
      const response = await fetch(`http://${address}/getImage?id=100&state=working`)
      const received = new Bun.CryptoHasher('sha256')
      for await (const chunk of response.body!) received.update(chunk)
      got = { hash: received.digest('hex'), length: response.headers.get('content-length') ?? '' }
    })
    const downMs = performance.now() - downStarted
    console.info(
      `100 MiB: upload ${upMs.toFixed(0)} ms, RSS +${(upGrowth / MiB).toFixed(1)} MiB; ` +
        `download ${downMs.toFixed(0)} ms, RSS +${(downGrowth / MiB).toFixed(1)} MiB`,
    )
    expect(got).toEqual({ hash: digest, length: String(100 * MiB) })
    expect(upGrowth).toBeLessThan(32 * MiB)
    expect(downGrowth).toBeLessThan(32 * MiB)
  })

  test('a body announced above Bun’s own 128 MiB limit gets our 413 with an Error: body, before any byte is sent', async () => {
    const socket = await startUpload(address, 'id=101&state=working', 200 * MiB, new Uint8Array(0))
    const answer = await answerOf(socket)
    expect(answer.status).toBe(413)
    expect(answer.body).toBe(`Error: The body is larger than the limit of ${101 * MiB} bytes.`)
  })

  test('a chunked body is cut off with 413 once it passes PIXMILL_MAX_UPLOAD_BYTES, and nothing is kept', async () => {
    let sent = 0
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 64 * MiB) return controller.close()
        controller.enqueue(sent === 0 ? pngBytes(64 * 1024) : new Uint8Array(64 * 1024))
        sent += 64 * 1024
      },
    })
    const answer = await upload(smallAddress, 'id=1&state=working', endless)
    expect(answer).toMatchObject({ status: 413, text: `Error: The body is larger than the limit of ${MiB} bytes.` })
    expect(sent).toBeLessThan(16 * MiB)
    await waitFor('no temp file', () => tempsBelow(smallDir.path).length === 0, 3000, 10)
    expect((await httpText(smallAddress, '/getImage?id=1&state=working')).status).toBe(404)
  })

  test('a client that disconnects halfway leaves no image, no temp file, and the old image as it was', async () => {
    const old = pngBytes(MiB, 1)
    expect((await upload(address, 'id=102&state=working', old)).text).toBe('success')
    for (const id of [102, 103]) {
      const socket = await startUpload(address, `id=${id}&state=working`, 8 * MiB, pngBytes(4 * MiB, 2))
      await waitFor('the temp file of the upload', () => tempsBelow().length === 1, 3000, 10)
      socket.destroy()
      await waitFor('the temp file to be removed', () => tempsBelow().length === 0, 3000, 10)
    }
    expect((await download('id=102&state=working')).bytes).toEqual(old)
    expect((await download('id=103&state=working')).status).toBe(404)
    expect((await httpText(address, '/metrics')).text).toContain('pixmill_storage_uploads_rejected_total{reason="broken_off",role="storage"} 2')
  })

  test('concurrent uploads to one id end with exactly one of the bodies, byte for byte', async () => {
    const bodies = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) => pngBytes(2 * MiB + seed * 1000, seed))
    const answers = await Promise.all(bodies.map((body) => upload(address, 'id=104&state=finished', body)))
    expect(answers.map((a) => a.text)).toEqual(bodies.map(() => 'success'))
    const stored = (await download('id=104&state=finished')).bytes
    expect(bodies.filter((body) => Buffer.from(body).equals(stored))).toHaveLength(1)
    expect(tempsBelow()).toEqual([])
  })

  test('after kill -9 every acknowledged image is there, and uploads cut short by it left nothing behind', async () => {
    const kept = pngBytes(3 * MiB, 7)
    expect((await upload(address, 'id=105&state=finished', kept)).text).toBe('success')
    const sockets = [
      await startUpload(address, 'id=105&state=finished', 8 * MiB, pngBytes(2 * MiB, 8)),
      await startUpload(address, 'id=106&state=working', 8 * MiB, pngBytes(2 * MiB, 9)),
    ]
    await waitFor('both temp files', () => tempsBelow().length === 2, 3000, 10)
    await storage.kill9()
    for (const socket of sockets) socket.destroy()
    expect(tempsBelow()).toHaveLength(2)
    storage = await startStorage()
    expect(tempsBelow()).toEqual([])
    expect((await download('id=105&state=finished')).bytes).toEqual(kept)
    expect((await download('id=106&state=working')).status).toBe(404)
    expect((await download('id=100&state=working')).headers.get('content-length')).toBe(String(100 * MiB))
  })
})
