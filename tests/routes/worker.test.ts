// The worker's port through app.handle: /status, the probes and its metrics; and the board's list of workers.
import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createKvClient } from '../../src/clients/kv-client.ts'
import { createMetricsRegistry } from '../../src/plugins/metrics.ts'
import { createWorkerDirectory } from '../../src/roles/frontend/worker-directory.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { createWorkerApp, stageMetrics } from '../../src/roles/worker/app.ts'
import type { WorkerStats } from '../../src/roles/worker/worker.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { call } from '../helpers/http.ts'
import { quietDeps } from '../helpers/silent.ts'
import { tempDir } from '../helpers/temp.ts'

const STARTED = Date.parse('2026-11-30T10:00:00Z')

function stats(overrides: Partial<WorkerStats> = {}): WorkerStats {
  return {
    processed: 7,
    failed: 2,
    peerErrors: 3,
    abandoned: 1,
    renewals: 0,
    inFlight: 2,
    processingMs: 700,
    loops: 4,
    busyLoops: 1,
    startedAt: STARTED,
    lastTaskAt: STARTED + 60_000,
    claimProblem: undefined,
    closing: false,
    ...overrides,
  }
}

function workerApp(read: () => WorkerStats, peers = { master: true, storage: true }) {
  const registry = createMetricsRegistry('worker')
  const stage = stageMetrics(registry)
  const app = createWorkerApp({ stats: read, address: () => '127.0.0.1:4100', peersHealthy: async () => peers, log: silentLogger, registry })
  return { app, stage }
}

describe('worker: GET /status', () => {
  test('says what the worker does: loops, busy, done, failed, when it started and last ended a task', async () => {
    const { app } = workerApp(() => stats())
    const got = await call(app, 'GET', '/status')
    expect(got.status).toBe(200)
    expect(JSON.parse(got.text)).toEqual({
      address: '127.0.0.1:4100',
      loops: 4,
      busy: 1,
      inFlight: 2,
      done: 7,
      failed: 2,
      abandoned: 1,
      startedAt: '2026-11-30T10:00:00.000Z',
      lastTaskAt: '2026-11-30T10:01:00.000Z',
      problem: null,
    })
  })

  test('names a failing claim as its problem; POST is 405', async () => {
    const { app } = workerApp(() => stats({ claimProblem: 'asking the master for a task fails: refused', lastTaskAt: undefined }))
    const got = JSON.parse((await call(app, 'GET', '/status')).text)
    expect(got).toMatchObject({ problem: 'asking the master for a task fails: refused', lastTaskAt: null })
    const wrong = await call(app, 'POST', '/status')
    expect(wrong.status).toBe(405)
    expect(wrong.text).toStartWith('Error:')
  })
})

describe('worker: probes', () => {
  test('/readyz is 200 while both peers answer, 503 naming the one that does not; /livez stays 200', async () => {
    const peers = { master: true, storage: true }
    const { app } = workerApp(() => stats(), peers)
    expect((await call(app, 'GET', '/readyz')).status).toBe(200)
    peers.master = false
    const down = await call(app, 'GET', '/readyz')
    expect(down.status).toBe(503)
    expect(JSON.parse(down.text)).toMatchObject({ role: 'worker', ok: false, reasons: ['the master does not answer'] })
    expect((await call(app, 'GET', '/health')).status).toBe(503)
    expect((await call(app, 'GET', '/livez')).status).toBe(200)
  })

  test('a closing worker is not ready', async () => {
    const { app } = workerApp(() => stats({ closing: true }))
    const got = await call(app, 'GET', '/readyz')
    expect(got.status).toBe(503)
    expect(JSON.parse(got.text).reasons).toEqual(['stopping: claims no new task'])
  })
})

describe('worker: GET /metrics', () => {
  test('tasks by outcome, loops, busy loops, and a histogram per stage fed by the stage runner', async () => {
    const { app, stage } = workerApp(() => stats())
    expect(await stage('decode', async () => 42)).toBe(42)
    await expect(stage('store', async () => Promise.reject(new Error('storage down')))).rejects.toThrow('storage down')
    const text = (await call(app, 'GET', '/metrics')).text
    expect(text).toContain('pixmill_worker_tasks_total{outcome="finished",role="worker"} 7')
    expect(text).toContain('pixmill_worker_tasks_total{outcome="failed",role="worker"} 2')
    expect(text).toContain('pixmill_worker_tasks_total{outcome="abandoned",role="worker"} 1')
    expect(text).toContain('pixmill_worker_peer_errors_total{role="worker"} 3')
    expect(text).toContain('pixmill_worker_loops{role="worker"} 4')
    expect(text).toContain('pixmill_worker_busy_loops{role="worker"} 1')
    // A stage that fails is timed too: a slow failing store is what an operator looks for.
    expect(text).toContain('pixmill_worker_stage_seconds_count{role="worker",stage="decode"} 1')
    expect(text).toContain('pixmill_worker_stage_seconds_count{role="worker",stage="store"} 1')
    expect(text).toContain('process_resident_memory_bytes{role="worker"}')
  })
})

describe('frontend: the worker directory', () => {
  const dir = tempDir()
  const kvStore = openSqliteKvStore(join(dir.path, 'kv'))
  const kvApp = createKvApp({ store: kvStore, ...quietDeps('kv') })
  afterAll(async () => {
    await kvStore.close()
    dir.remove()
  })

  test('lists the registered workers with their status; one that stops answering shows its last figures; one that left is forgotten', async () => {
    let done = 3
    const a = workerApp(() => stats({ processed: done }))
    const b = workerApp(() => stats({ loops: 1, busyLoops: 0, processed: 0 }))
    let aUp = true
    const byHost: Record<string, ReturnType<typeof workerApp>['app']> = { 'a.local:1': a.app, 'b.local:2': b.app }
    let now = STARTED
    const fetcher = async (request: Request) => {
      const host = new URL(request.url).host
      if (host === 'kv.local') return kvApp.handle(request)
      if (host === 'a.local:1' && !aUp) throw new TypeError('connect ECONNREFUSED')
      return byHost[host]!.handle(request)
    }
    const kv = createKvClient('kv.local', fetcher)
    await kv.set('workerAddress/a.local:1', 'a.local:1', 60)
    await kv.set('workerAddress/b.local:2', 'b.local:2', 60)
    // Not a worker: the plain key of another role, and a pair beside the prefix.
    await kv.set('masterAddress', 'm.local:3')
    const directory = createWorkerDirectory(kv, fetcher, { now: () => now })

    const first = await directory.list()
    expect(first.map((w) => w.address)).toEqual(['a.local:1', 'b.local:2'])
    expect(first[0]).toEqual({
      address: 'a.local:1',
      reachable: true,
      loops: 4,
      busy: 1,
      done: 3,
      failed: 2,
      lastSeen: '2026-11-30T10:00:00.000Z',
      problem: null,
    })

    aUp = false
    done = 9
    now += 30_000
    const second = await directory.list()
    expect(second[0]).toMatchObject({
      address: 'a.local:1',
      reachable: false,
      done: 3,
      lastSeen: '2026-11-30T10:00:00.000Z',
      problem: 'does not answer on its port',
    })
    expect(second[1]).toMatchObject({ address: 'b.local:2', reachable: true, lastSeen: '2026-11-30T10:00:30.000Z' })

    await kv.remove('workerAddress/a.local:1')
    expect((await directory.list()).map((w) => w.address)).toEqual(['b.local:2'])
    // Back under the same address, it starts afresh: nothing of it was kept after it left.
    await kv.set('workerAddress/a.local:1', 'a.local:1', 60)
    const returned = (await directory.list())[0]!
    expect(returned).toMatchObject({ address: 'a.local:1', reachable: false, done: null, lastSeen: null })
    for (const key of ['workerAddress/a.local:1', 'workerAddress/b.local:2', 'masterAddress']) await kv.remove(key)
  })

  test('a worker never heard from shows no figures; kv down rejects', async () => {
    const fetcher = async (request: Request) => {
      if (new URL(request.url).host === 'kv.local') return kvApp.handle(request)
      throw new TypeError('connect ECONNREFUSED')
    }
    const kv = createKvClient('kv.local', fetcher)
    await kv.set('workerAddress/gone.local:9', 'gone.local:9', 60)
    const [only] = await createWorkerDirectory(kv, fetcher).list()
    expect(only).toEqual({
      address: 'gone.local:9',
      reachable: false,
      loops: null,
      busy: null,
      done: null,
      failed: null,
      lastSeen: null,
      problem: 'does not answer on its port',
    })
    const refused = () => Promise.reject(new TypeError('connect ECONNREFUSED'))
    await expect(createWorkerDirectory(createKvClient('kv.local', refused), refused).list()).rejects.toThrow(/unreachable/)
    await kv.remove('workerAddress/gone.local:9')
  })
})

describe('worker: GET /history', () => {
  test('tasks ended per minute, for the last day at most; a bad `since` is 400', async () => {
    const { createMinuteTally } = await import('../../src/roles/worker/minute-tally.ts')
    const tally = createMinuteTally()
    const now = Date.parse('2026-11-30T12:00:30Z')
    tally.add('done', now - 2 * 24 * 3600_000) // two days ago: its slot is reused, so it never shows
    tally.add('done', now - 90_000)
    tally.add('failed', now - 90_000)
    tally.add('done', now - 10_000)
    tally.add('done', now - 5_000)
    const app = createWorkerApp({
      stats: () => stats(),
      history: tally.since,
      now: () => now,
      address: () => 'w:1',
      log: silentLogger,
      registry: createMetricsRegistry('worker'),
    })
    const all = JSON.parse((await call(app, 'GET', '/history')).text)
    expect(all.minutes).toEqual([
      { at: '2026-11-30T11:59:00.000Z', done: 1, failed: 1 },
      { at: '2026-11-30T12:00:00.000Z', done: 2, failed: 0 },
    ])
    const recent = JSON.parse((await call(app, 'GET', `/history?since=${now - 20_000}`)).text)
    expect(recent.minutes).toEqual([{ at: '2026-11-30T12:00:00.000Z', done: 2, failed: 0 }])
    const bad = await call(app, 'GET', '/history?since=yesterday')
    expect(bad.status).toBe(400)
    expect(bad.text).toStartWith('Error:')
  })
})
