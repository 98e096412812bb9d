// The shared plugins as every role gets them: health, metrics, the Swagger page and its offline assets.
import { afterAll, describe, expect, test } from 'bun:test'
import { renameSync } from 'node:fs'
import { join } from 'node:path'
import { queryProblem } from '../../src/plugins/errors.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { call } from '../helpers/http.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { tempDir } from '../helpers/temp.ts'

const dir = tempDir()
const store = openSqliteKvStore(join(dir.path, 'kv'))
const app = createKvApp({ store, ...quietDeps('kv') })
afterAll(async () => {
  await store.close()
  dir.remove()
})

describe('plumbing: GET /health', () => {
  test('answers 200 {role, ok: true} while the role can serve, 503 once its data folder is gone', async () => {
    const up = await call(app, 'GET', '/health')
    expect(up.status).toBe(200)
    expect(JSON.parse(up.text)).toMatchObject({ role: 'kv', ok: true })
    renameSync(dir.path, `${dir.path}.gone`)
    try {
      const down = await call(app, 'GET', '/health')
      expect(down.status).toBe(503)
      expect(JSON.parse(down.text)).toMatchObject({ role: 'kv', ok: false })
    } finally {
      renameSync(`${dir.path}.gone`, dir.path)
    }
  })
})

describe('plumbing: GET /livez and /readyz', () => {
  test('readiness follows what the role can do; liveness stays 200 however its dependencies fare', async () => {
    expect(JSON.parse((await call(app, 'GET', '/readyz')).text)).toMatchObject({ role: 'kv', ok: true })
    const live = JSON.parse((await call(app, 'GET', '/livez')).text)
    expect(live).toMatchObject({ role: 'kv', ok: true })
    expect(live.eventLoopLagMs).toBeGreaterThanOrEqual(0)
    renameSync(dir.path, `${dir.path}.gone`)
    try {
      expect((await call(app, 'GET', '/readyz')).status).toBe(503)
      expect((await call(app, 'GET', '/livez')).status).toBe(200)
    } finally {
      renameSync(`${dir.path}.gone`, dir.path)
    }
  })

  test('a master whose storage is down is not ready, and still alive', async () => {
    const stack = inProcessStack()
    try {
      stack.setStorageUp(false)
      const ready = await call(stack.master, 'GET', '/readyz')
      expect(ready.status).toBe(503)
      expect(JSON.parse(ready.text)).toMatchObject({ ok: false, storage: false })
      expect((await call(stack.master, 'GET', '/livez')).status).toBe(200)
    } finally {
      await stack.close()
    }
  })
})

describe('plumbing: GET /metrics', () => {
  test('the process figures under the names stock dashboards use, and what build runs', async () => {
    const text = (await call(app, 'GET', '/metrics')).text
    for (const name of [
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'process_open_fds',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} gauge$`, 'm'))
    }
    for (const name of ['process_cpu_seconds_total', 'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total']) {
      expect(text).toMatch(new RegExp(`^# TYPE ${name} counter$`, 'm'))
      expect(Number(new RegExp(`^${name}\\{[^}]*\\} ([\\d.e-]+)$`, 'm').exec(text)?.[1])).toBeGreaterThan(0)
    }
    expect(text).toMatch(/^pixmill_build_info\{version="\d+\.\d+\.\d+",bun="\d+\.\d+\.\d+",commit="[0-9a-f]+",role="kv"\} 1$/m)
  })

  test('is Prometheus text with request counts per route and the real status', async () => {
    await call(app, 'GET', '/list')
    await call(app, 'GET', '/get?key=01&key=02')
    await call(app, 'GET', '/get')
    // Counted as each answer is made, so no wait is needed (they used to be counted a moment after it had gone out).
    const got = await call(app, 'GET', '/metrics')
    expect(got.status).toBe(200)
    expect(got.headers.get('content-type')).toStartWith('text/plain')
    expect(got.text).toContain('pixmill_http_requests_total{method="GET",route="/list",status="200",role="kv"} 1')
    expect(got.text).toContain('pixmill_http_requests_total{method="GET",route="/get",status="400",role="kv"} 2')
    expect(got.text).toContain('pixmill_kv_pairs{role="kv"}')
    expect(got.text).toContain('pixmill_http_request_duration_seconds_count{role="kv",method="GET",route="/list"} 1')
  })
})

describe('plumbing: GET /swagger', () => {
  test('is a Swagger UI page that loads its scripts from this server, not from a CDN', async () => {
    const page = await call(app, 'GET', '/swagger')
    expect(page.status).toBe(200)
    expect(page.text).toContain('/swagger/assets/swagger-ui-bundle.js')
    expect(page.text).not.toMatch(/https?:\/\/(unpkg|cdn)/)
    const script = await call(app, 'GET', '/swagger/assets/swagger-ui-bundle.js')
    expect(script.status).toBe(200)
    expect(script.text.length).toBeGreaterThan(100_000)
    expect((await call(app, 'GET', '/swagger/assets/swagger-ui.css')).status).toBe(200)
  })

  test('the OpenAPI document names every route of the role', async () => {
    const spec = JSON.parse((await call(app, 'GET', '/swagger/json')).text)
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/get', '/set', '/remove', '/list', '/health', '/metrics']))
    expect(spec.paths['/set'].post.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['key', 'ttl', 'value'])
  })
})

describe('plumbing: query checks', () => {
  test('a repeated key or broken percent-encoding is named; a clean query passes', () => {
    expect(queryProblem('http://localhost/get?id=1&id=2')).toContain('"id"')
    expect(queryProblem('http://localhost/get?key=%E0%A4%A')).toContain('percent-encoded')
    expect(queryProblem('http://localhost/get?key=a%20b&value=%C3%A9')).toBeUndefined()
    expect(queryProblem('http://localhost/list')).toBeUndefined()
  })
})
