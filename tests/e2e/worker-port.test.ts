// The worker's port as real processes: registered in kv, its probes and metrics, on the board; it leaves when stopped.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startCluster, waitFor } from '../helpers/cluster.ts'
import { encodePng } from '../helpers/png.ts'
import { freePort, httpText, type RoleProcess, spawnRole, waitHealthy } from '../helpers/processes.ts'

let cluster: Awaited<ReturnType<typeof startCluster>>
let frontend: RoleProcess
const frontendAddress = `127.0.0.1:${freePort()}`

beforeAll(async () => {
  // A short time to live, so that a worker killed without leaving the registry drops off the board within the test.
  cluster = await startCluster({ env: { PIXMILL_REGISTRATION_TTL_SECONDS: '3' } })
  frontend = await spawnRole('frontend', [cluster.address.kv, frontendAddress], { dataDir: cluster.dir, env: { PIXMILL_REGISTRATION_TTL_SECONDS: '3' } })
  await waitHealthy(frontendAddress, 20_000, frontend)
}, 60_000)
afterAll(async () => {
  await frontend?.kill9()
  await cluster?.close()
})

const workerKeys = async () => (await httpText(cluster.address.kv, '/list?prefix=workerAddress')).text.split('\n').filter(Boolean)
const board = async () => JSON.parse((await httpText(frontendAddress, '/api/board')).text) as { workers: Array<Record<string, unknown>> }

describe('e2e: the worker’s port', () => {
  test('PIXMILL_WORKER_LISTEN: probes, /status, metrics per stage after a task, on the board; SIGTERM takes it off', async () => {
    const address = `127.0.0.1:${freePort()}`
    const worker = await cluster.startWorker('worker-port', { PIXMILL_WORKER_LISTEN: address }, 2)
    // Registered under its own key only: nobody calls "the" worker, so there is no plain workerAddress.
    await waitFor('the worker in kv', async () => (await workerKeys()).some((line) => line.startsWith(`workerAddress/${address}`)))
    expect((await workerKeys()).some((line) => /^workerAddress[\s=]/.test(line) || line === 'workerAddress')).toBe(false)
    expect((await httpText(address, '/livez')).status).toBe(200)
    await waitFor('the worker ready', async () => (await httpText(address, '/readyz')).status === 200)

    const id = await cluster.uploadOk(
      encodePng(2, 1, 2, 8, [
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
      ]),
    )
    await cluster.waitState(id, [2])
    // The master has the finish as soon as the worker reports it; the worker counts it when the report has returned.
    const status = await waitFor('the worker to count its task', async () => {
      const now = JSON.parse((await httpText(address, '/status')).text)
      return now.inFlight === 0 && now
    })
    expect(status).toMatchObject({ address, loops: 2, done: 1, failed: 0, problem: null })
    const metrics = (await httpText(address, '/metrics')).text
    expect(metrics).toContain('pixmill_worker_tasks_total{outcome="finished",role="worker"} 1')
    for (const stage of ['fetch', 'decode', 'encode', 'store', 'report']) {
      expect(metrics).toContain(`pixmill_worker_stage_seconds_count{role="worker",stage="${stage}"} 1`)
    }

    const listed = await waitFor('the worker on the board', async () => (await board()).workers.find((w) => w.address === address))
    expect(listed).toMatchObject({ reachable: true, loops: 2, done: 1, failed: 0 })

    worker.proc.kill('SIGTERM')
    expect(await worker.proc.exited).toBe(0)
    // It left the registry on its way out, without waiting for its time to live.
    expect((await workerKeys()).some((line) => line.includes(address))).toBe(false)
    expect((await board()).workers.some((w) => w.address === address)).toBe(false)
  }, 60_000)

  test('the master down: the worker is not ready but stays live, and is ready again when the master is back', async () => {
    const address = `127.0.0.1:${freePort()}`
    await cluster.startWorker('worker-outage', { PIXMILL_WORKER_LISTEN: address })
    await waitFor('the worker ready', async () => (await httpText(address, '/readyz')).status === 200)
    await cluster.roles.master!.kill9()
    const down = await waitFor('the worker unready', async () => {
      const got = await httpText(address, '/readyz')
      return got.status === 503 ? got : undefined
    })
    expect(JSON.parse(down.text).reasons).toContain('the master does not answer')
    expect((await httpText(address, '/livez')).status).toBe(200)
    await cluster.start('master')
    await waitFor('the worker ready again', async () => (await httpText(address, '/readyz')).status === 200, 20_000)
    // A worker killed outright leaves the board when its registration runs out.
    await cluster.killWorkers()
    await waitFor('the killed worker off the board', async () => !(await board()).workers.some((w) => w.address === address), 15_000, 250)
  }, 60_000)

  test('a bad PIXMILL_WORKER_LISTEN stops the worker at start, naming the variable', async () => {
    const bad = Bun.spawnSync(['bun', 'run', 'src/worker.ts', cluster.address.kv, '1'], {
      env: { ...process.env, PIXMILL_WORKER_LISTEN: 'nowhere' },
      stderr: 'pipe',
    })
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr.toString()).toContain('PIXMILL_WORKER_LISTEN must be host:port')
  })
})
