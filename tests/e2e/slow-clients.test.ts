// Slow and stalled clients are cut off after a timeout without holding resources, while others are served.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { join } from 'node:path'
import { PNG_SIGNATURE } from '../../src/shared/png-header.ts'
import { ihdrChunk } from '../helpers/png.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { rawClient } from '../helpers/raw-client.ts'
import { filesBelow } from '../helpers/stored-files.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

// Bun's own header timeout is 10 s: these tests wait for it.
setDefaultTimeout(30_000)

const dir = tempDir('pixmill-e2e-slow-')
const kv = `127.0.0.1:${freePort()}`
const storage = `127.0.0.1:${freePort()}`
const env = { PIXMILL_IDLE_TIMEOUT_SECONDS: '2', PIXMILL_UPLOAD_TIMEOUT_SECONDS: '3' }
const roles: RoleProcess[] = []

beforeAll(async () => {
  roles.push(await spawnRole('kv', [kv], { dataDir: dir.path, healthAt: kv, env }))
  roles.push(await spawnRole('storage', [storage, kv], { dataDir: dir.path, healthAt: storage, env }))
})
afterAll(async () => {
  await Promise.allSettled(roles.map((r) => r.kill9()))
  dir.remove()
})

/** What storage checks before it stores anything: a body with these first bytes is one it writes. */
const PNG_HEAD = new Uint8Array([...PNG_SIGNATURE, ...ihdrChunk(64, 64, 8, 6)])
const files = () => filesBelow(join(dir.path, 'storage'))

describe('e2e: slow clients', () => {
  test('a client that sends half its headers and stops is cut off after a timeout; others are served meanwhile', async () => {
    const slow = await rawClient(kv)
    slow.write('GET /list HTTP/1.1\r\nHost: kv\r\n')
    const others = await Promise.all(Array.from({ length: 5 }, () => httpText(kv, '/list')))
    expect(others.every((r) => r.status === 200)).toBe(true)
    // Bun cuts off a request whose headers are incomplete after its own fixed 10 s, whatever idleTimeout says.
    const { afterMs } = await slow.closed
    expect(afterMs).toBeGreaterThan(1000)
    expect(afterMs).toBeLessThan(15_000)
  })

  test('a body trickled byte by byte past PIXMILL_UPLOAD_TIMEOUT_SECONDS gets 408 and leaves nothing on disk', async () => {
    const slow = await rawClient(storage)
    slow.write(`POST /sendImage?id=5&state=working HTTP/1.1\r\nHost: storage\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n`)
    slow.write(PNG_HEAD)
    const timer = setInterval(() => slow.write(new Uint8Array([0x41])), 300)
    try {
      expect((await httpText(storage, '/health')).status).toBe(200)
      const { text, afterMs } = await slow.closed
      expect(text).toStartWith('HTTP/1.1 408')
      expect(text).toContain('Error:')
      expect(afterMs).toBeLessThan(8000)
    } finally {
      clearInterval(timer)
    }
    expect(files()).toEqual([])
  })

  test('a client that stops halfway through its body is cut off; no image and no temporary file remain', async () => {
    const slow = await rawClient(storage)
    slow.write(`POST /sendImage?id=6&state=working HTTP/1.1\r\nHost: storage\r\nContent-Length: 100000\r\n\r\n`)
    slow.write(new Uint8Array([...PNG_HEAD, ...new Uint8Array(40_000)]))
    const { afterMs } = await slow.closed
    expect(afterMs).toBeLessThan(8000)
    await waitFor('the temporary file to be removed', () => files().length === 0)
    expect((await httpText(storage, '/getImage?id=6&state=working')).status).toBe(404)
  })
})
