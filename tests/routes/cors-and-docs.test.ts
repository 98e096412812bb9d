// CORS for the public API (PIXMILL_CORS_ORIGINS) and what the OpenAPI documents say of the token and the task key.
import { afterEach, describe, expect, test } from 'bun:test'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { call, inProcess } from '../helpers/http.ts'
import { TINY_PNG } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { stackPool } from '../helpers/stack.ts'

const TOKEN = 'docs-route-token-0123456789'
const APP = 'https://app.example'
const PNG = TINY_PNG
const stacks = stackPool()
afterEach(() => stacks.closeAll())

const corsHeaders = (headers: Headers) => [...headers.keys()].filter((name) => name.startsWith('access-control-'))
const preflight = (app: Parameters<typeof call>[0], path: string, origin = APP, method = 'POST') =>
  call(app, 'OPTIONS', path, null, { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type, x-task-key' })

describe('CORS (PIXMILL_CORS_ORIGINS)', () => {
  test('unset: no answer carries a CORS header, and a preflight is an ordinary wrong method', async () => {
    const stack = stacks.with({ token: TOKEN })
    const got = await call(stack.master, 'GET', '/isReady?id=0', null, { origin: APP })
    expect(corsHeaders(got.headers)).toEqual([])
    const pre = await preflight(stack.master, '/new')
    expect(pre.status).toBe(405)
    expect(corsHeaders(pre.headers)).toEqual([])
  })

  test('a listed origin may read answers, errors included, and the task key and request id headers', async () => {
    const stack = stacks.with({ token: TOKEN, privateResults: true, corsOrigins: [APP, 'http://localhost:5173'] })
    const uploaded = await call(stack.master, 'POST', '/new', PNG, { origin: APP, 'content-type': 'image/png' })
    expect(uploaded.headers.get('access-control-allow-origin')).toBe(APP)
    expect(uploaded.headers.get('vary')).toContain('Origin')
    const exposed = uploaded.headers.get('access-control-expose-headers')!.toLowerCase()
    for (const name of ['x-task-key', 'x-request-id', 'retry-after']) expect(exposed).toContain(name)
    expect(uploaded.headers.get('access-control-allow-credentials')).toBeNull()
    const missing = await call(stack.master, 'GET', '/status?id=99', null, { origin: APP })
    expect([missing.status, missing.headers.get('access-control-allow-origin')]).toEqual([404, APP])
  })

  test('a preflight is answered 204 with the methods and headers allowed, also for an internal path and with the token set', async () => {
    const stack = stacks.with({ token: TOKEN, corsOrigins: [APP] })
    for (const path of ['/new', '/get', '/getNewTask']) {
      const pre = await preflight(stack.master, path)
      expect([path, pre.status]).toEqual([path, 204])
      expect(pre.headers.get('access-control-allow-origin')).toBe(APP)
      expect(pre.headers.get('access-control-allow-methods')).toContain('POST')
      expect(pre.headers.get('access-control-allow-headers')!.toLowerCase()).toContain('x-task-key')
      expect(Number(pre.headers.get('access-control-max-age'))).toBeGreaterThan(0)
    }
  })

  test('an origin not listed gets no Access-Control-Allow-Origin, so a browser keeps the answer from its page', async () => {
    const stack = stacks.with({ corsOrigins: [APP] })
    for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'http://app.example', 'null']) {
      expect((await call(stack.master, 'GET', '/counts', null, { origin })).headers.get('access-control-allow-origin')).toBeNull()
      expect((await preflight(stack.master, '/new', origin)).headers.get('access-control-allow-origin')).toBeNull()
    }
  })

  test('`*` lets any origin in without `Vary: *`, and the method guard and unknown paths answer as before', async () => {
    const stack = stacks.with({ corsOrigins: '*' })
    const got = await call(stack.master, 'GET', '/counts', null, { origin: 'https://any.example' })
    expect(got.headers.get('access-control-allow-origin')).toBe('https://any.example')
    expect(got.headers.get('vary')).not.toContain('*')
    const wrong = await call(stack.master, 'DELETE', '/new')
    expect([wrong.status, wrong.headers.get('allow')]).toEqual([405, 'POST'])
    const unknown = await call(stack.master, 'GET', '/nothing-here')
    expect([unknown.status, unknown.text]).toEqual([404, 'Error: Not found: GET /nothing-here'])
    expect((await call(stack.master, 'GET', '/')).status).toBe(404)
  })

  test('the frontend’s upload answers its key to a listed origin', async () => {
    const stack = stacks.with({ privateResults: true })
    const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), inProcess(stack.master))
    const frontend = createFrontendApp({ master, maxUploadBytes: 64 * 1024, privateResults: true, corsOrigins: [APP], ...quietDeps('frontend') })
    const data = new FormData()
    data.append('uploadfile', new Blob([PNG], { type: 'image/png' }), 'a.png')
    const got = await call(frontend, 'POST', '/submitTask', data, { origin: APP })
    expect(got.status).toBe(200)
    expect(got.headers.get('access-control-allow-origin')).toBe(APP)
    expect(got.headers.get('access-control-expose-headers')!.toLowerCase()).toContain('x-task-key')
    expect(got.headers.get('x-task-key')).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect((await preflight(frontend, '/submitTask')).status).toBe(204)
    // The page itself still loads as before.
    expect((await call(frontend, 'GET', '/')).status).toBe(200)
  })
})

type Operation = { security?: Array<Record<string, string[]>>; parameters?: Array<{ name: string; in: string }> }
async function document(app: Parameters<typeof call>[0]) {
  return JSON.parse((await call(app, 'GET', '/swagger/json')).text) as {
    components: { securitySchemes: Record<string, { type: string; scheme?: string; in?: string; name?: string }> }
    paths: Record<string, Record<string, Operation>>
  }
}

describe('OpenAPI: the bearer scheme and the task key', () => {
  test('the master declares both schemes; internal and operators’ routes take the token, reads of a result the key or the token', async () => {
    const stack = stacks.with({ token: TOKEN, privateResults: true })
    const doc = await document(stack.master)
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' })
    expect(doc.components.securitySchemes.taskKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Task-Key' })
    for (const path of ['/getNewTask', '/registerTaskFinished', '/retryTask', '/deleteTask', '/tasks']) {
      expect([path, Object.values(doc.paths[path]!)[0]!.security]).toEqual([path, [{ bearer: [] }]])
    }
    for (const path of ['/isReady', '/get', '/status', '/wait']) {
      const operation = doc.paths[path]!.get!
      expect([path, operation.security]).toEqual([path, [{ taskKey: [] }, { bearer: [] }]])
      expect(operation.parameters?.find((p) => p.name === 'key')?.in).toBe('query')
    }
    expect(doc.paths['/new']!.post!.security).toBeUndefined()
    expect(doc.paths['/counts']!.get!.security).toBeUndefined()
  })

  test('without a token nothing asks for one, and without private results no route asks for a key', async () => {
    const doc = await document(stacks.with({}).master)
    expect(doc.components.securitySchemes.taskKey).toBeUndefined()
    for (const operations of Object.values(doc.paths)) for (const operation of Object.values(operations)) expect(operation.security).toBeUndefined()
  })

  test('the other roles mark their internal routes, and the frontend its operators’ and keyed ones', async () => {
    const stack = stacks.with({ token: TOKEN, privateResults: true })
    const database = await document(stack.database)
    for (const [path, operations] of Object.entries(database.paths)) {
      if (['/health', '/readyz', '/livez', '/metrics'].includes(path)) continue
      expect([path, Object.values(operations)[0]!.security]).toEqual([path, [{ bearer: [] }]])
    }
    const storage = await document(stack.storage)
    expect(storage.paths['/sendImage']!.post!.security).toEqual([{ bearer: [] }])
    expect(storage.paths['/getImage']!.get!.security).toEqual([{ bearer: [] }])
    const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), inProcess(stack.master))
    const frontend = await document(createFrontendApp({ master, maxUploadBytes: 1024, token: TOKEN, privateResults: true, ...quietDeps('frontend') }))
    expect(frontend.paths['/api/retry']!.post!.security).toEqual([{ bearer: [] }])
    expect(frontend.paths['/api/board']!.get!.security).toEqual([{ bearer: [] }])
    expect(frontend.paths['/getImage']!.get!.security).toEqual([{ taskKey: [] }, { bearer: [] }])
    expect(frontend.paths['/submitTask']!.post!.security).toBeUndefined()
  })
})
