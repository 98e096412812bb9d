// Several instances of a role on the embedded default: registrations with a heartbeat, calls spread over live
// instances, and a killed instance dropping out while the work goes on.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import sharp from 'sharp'
import { encodePng } from '../helpers/png.ts'
import { freePort, httpText, type RoleProcess, spawnRole } from '../helpers/processes.ts'

/**
 * Registrations run out 3 s after a kill. A claim the database hands out just as its master is killed -9 reaches no
 * worker, and comes back when its lease does: 10 s here, within the test's wait (the default 60 s is not).
 */
const ENV = { PIXMILL_REGISTRATION_TTL_SECONDS: '3', PIXMILL_LEASE_SECONDS: '10' }

import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

setDefaultTimeout(60_000)
const dir = tempDir('pixmill-e2e-many-')
const at = () => `127.0.0.1:${freePort()}`
const [kv, database, storage, masterA, masterB, frontend] = [at(), at(), at(), at(), at(), at()]
const roles: Record<string, RoleProcess> = {}

beforeAll(async () => {
  const spawn = (name: string, role: string, args: string[], healthAt?: string) =>
    spawnRole(role, args, { dataDir: dir.path, healthAt, env: ENV }).then((p) => (roles[name] = p))
  await spawn('kv', 'kv', [kv], kv)
  await spawn('database', 'database', [database, kv], database)
  await spawn('storage', 'storage', [storage, kv], storage)
  await spawn('masterA', 'master', [masterA, kv], masterA)
  await spawn('masterB', 'master', [masterB, kv], masterB)
  await spawn('worker1', 'worker', [kv, '1'])
  await spawn('worker2', 'worker', [kv, '1'])
  await spawn('frontend', 'frontend', [kv, frontend], frontend)
})
afterAll(async () => {
  await Promise.allSettled(Object.values(roles).map((r) => r.kill9()))
  dir.remove()
})

const pixel = (i: number) => [i % 256, (i * 7) % 256, 99]
const pngFor = (i: number) => encodePng(2, 1, 2, 8, [[pixel(i), pixel(i + 1)]])

async function submit(i: number): Promise<number | undefined> {
  const form = new FormData()
  form.append('uploadfile', new Blob([pngFor(i)], { type: 'image/png' }), `${i}.png`)
  const response = await fetch(`http://${frontend}/submitTask`, { method: 'POST', body: form, signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
  if (response?.status !== 200) return undefined
  return Number(await response.text())
}

describe('e2e: many instances', () => {
  test('both masters are registered with a time to live, and the plain key names one of them', async () => {
    const list = (await httpText(kv, '/list?prefix=masterAddress%2F')).text
    expect(list).toContain(`masterAddress/${masterA} : ${masterA}`)
    expect(list).toContain(`masterAddress/${masterB} : ${masterB}`)
    expect([masterA, masterB]).toContain((await httpText(kv, '/get?key=masterAddress')).text)
  })

  test('idle workers hold their claims through either master; a task uploaded through the other is claimed at once', async () => {
    const claimsAsked = async () => {
      const metrics = (await httpText(database, '/metrics')).text
      return [...metrics.matchAll(/^pixmill_http_requests_total\{method="POST",route="\/getNewTask",status="\d+"[^}]*\} (\d+)$/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      )
    }
    // Quiet: two workers of one loop each hold one claim at a time, each asked again after 20 s only.
    await Bun.sleep(500)
    const before = await claimsAsked()
    await Bun.sleep(2500)
    expect((await claimsAsked()) - before).toBeLessThanOrEqual(2)
    for (const master of [masterA, masterB]) {
      const started = performance.now()
      const id = Number((await httpText(master, '/new', { method: 'POST', body: pngFor(500), headers: { 'content-type': 'image/png' } })).text)
      const task = JSON.parse((await httpText(master, `/wait?id=${id}&timeout=20`)).text) as { state: number }
      expect(task.state).toBe(2)
      // A polling worker's back-off after a quiet spell alone is up to 1.5 s.
      expect(performance.now() - started).toBeLessThan(1000)
    }
  })

  test('uploads spread over both masters; one master killed midway drops out, and every acknowledged task finishes', async () => {
    const accepted = new Map<number, number>()
    for (let i = 0; i < 60; i++) {
      if (i === 20) await roles.masterA!.kill9()
      const id = await submit(i)
      if (id !== undefined) accepted.set(id, i)
    }
    expect(accepted.size).toBeGreaterThanOrEqual(55)
    const logA = await Bun.file(roles.masterA!.logFile).text()
    const logB = await Bun.file(roles.masterB!.logFile).text()
    expect(logA).toContain('upload accepted')
    expect(logB).toContain('upload accepted')
    // The killed master's registration runs out (3 s here) and the plain key points at the live one.
    await waitFor('the killed master to leave kv', async () => !(await httpText(kv, '/list?prefix=masterAddress%2F')).text.includes(masterA), 15_000, 250)
    expect((await httpText(kv, '/get?key=masterAddress')).text).toBe(masterB)
    for (const [id, i] of accepted) {
      await waitFor(`task ${id} to finish`, async () => (await httpText(masterB, `/isReady?id=${id}`)).text === '1', 35_000)
      const result = Buffer.from(await (await fetch(`http://${masterB}/get?id=${id}`)).arrayBuffer())
      const { data } = await sharp(result).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
      const [r, g, b] = pixel(i)
      expect([...data.subarray(0, 4)]).toEqual([g!, r!, b!, 255])
    }
    // Both workers took part.
    for (const worker of ['worker1', 'worker2']) expect(await Bun.file(roles[worker]!.logFile).text()).toContain('task finished')
  })
})
