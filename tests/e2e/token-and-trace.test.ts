// Every role as a process with PIXMILL_TOKEN set: the work still flows, outsiders are refused, and one upload's
// request id can be followed through the logs of every role it touched.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { encodePng } from '../helpers/png.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const TOKEN = 'e2e-shared-secret-0123456789'
const dir = tempDir('pixmill-e2e-token-')
const at = () => `127.0.0.1:${freePort()}`
const [kv, database, storage, master, frontend] = [at(), at(), at(), at(), at()]
const env = { PIXMILL_TOKEN: TOKEN }
const roles: Record<string, RoleProcess> = {}
const bearer = { authorization: `Bearer ${TOKEN}` }

beforeAll(async () => {
  roles.kv = await spawnRole('kv', [kv], { dataDir: dir.path, healthAt: kv, env })
  roles.database = await spawnRole('database', [database, kv], { dataDir: dir.path, healthAt: database, env })
  roles.storage = await spawnRole('storage', [storage, kv], { dataDir: dir.path, healthAt: storage, env })
  roles.master = await spawnRole('master', [master, kv], { dataDir: dir.path, healthAt: master, env })
  roles.worker = await spawnRole('worker', [kv, '1'], { dataDir: dir.path, env })
  roles.frontend = await spawnRole('frontend', [kv, frontend], { dataDir: dir.path, healthAt: frontend, env })
})
afterAll(async () => {
  await Promise.allSettled(Object.values(roles).map((r) => r.kill9()))
  dir.remove()
})

describe('e2e: PIXMILL_TOKEN and request ids', () => {
  test('an outsider cannot repoint the registry or touch internal endpoints; the public API stays open', async () => {
    expect((await httpText(kv, `/set?key=masterAddress&value=${encodeURIComponent('evil.example:80')}`, { method: 'POST' })).status).toBe(401)
    expect((await httpText(kv, '/get?key=masterAddress')).text).toBe(master)
    expect((await httpText(database, '/getNewTask', { method: 'POST' })).status).toBe(401)
    expect((await httpText(database, '/list')).status).toBe(401)
    expect((await httpText(storage, '/sendImage?id=1&state=finished', { method: 'POST', body: 'x' })).status).toBe(401)
    expect((await httpText(master, '/getNewTask', { method: 'POST' })).status).toBe(401)
    expect((await httpText(master, '/isReady?id=987654')).status).toBe(404)
    expect((await httpText(database, '/list', { headers: bearer })).status).toBe(200)
  })

  test('an upload through the frontend is processed, and its request id shows in the logs of every role it crossed', async () => {
    const png = encodePng(3, 1, 2, 8, [
      [
        [10, 20, 30],
        [40, 50, 60],
        [70, 80, 90],
      ],
    ])
    const form = new FormData()
    form.append('uploadfile', new Blob([png], { type: 'image/png' }), 'a.png')
    const upload = await fetch(`http://${frontend}/submitTask`, { method: 'POST', body: form, headers: { 'x-request-id': 'trace-e2e-42' } })
    expect(upload.headers.get('x-request-id')).toBe('trace-e2e-42')
    const id = await upload.text()
    expect(id).toMatch(/^\d+$/)
    await waitFor(`task ${id} to finish`, async () => (await httpText(master, `/isReady?id=${id}`)).text === '1', 20_000, 50)
    // Logs are written asynchronously: each role's line may come a moment after the task finished.
    for (const role of ['frontend', 'master', 'database', 'storage', 'worker']) {
      const traced = async () => (await Bun.file(roles[role]!.logFile).text()).includes('"requestId":"trace-e2e-42"')
      await waitFor(`a line of ${role} with the request id`, traced, 5000).catch(() => {})
      expect({ role, traced: await traced() }).toEqual({ role, traced: true })
    }
  })
})
