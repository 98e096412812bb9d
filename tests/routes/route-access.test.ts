// Every route of every role is internal unless it is declared public: walk each app's routes, call each without the
// token, and hold the open ones to the README's Security table, written out here on its own.
import { afterEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import type { AnyElysia } from 'elysia'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { boardFeedOf } from '../../src/roles/frontend/board.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { createWorkerApp } from '../../src/roles/worker/app.ts'
import { inProcess, ORIGIN } from '../helpers/http.ts'
import { encodePng } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'
import { tempDir } from '../helpers/temp.ts'

const TOKEN = 'a-shared-secret-of-some-length'
const PNG = encodePng(1, 1, 2, 8, [[[1, 2, 3]]])
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

/** Open on every role with a port: probes, metrics, the Swagger page and its document, and CORS preflights. */
const ALWAYS_OPEN = [
  'GET /health',
  'GET /livez',
  'GET /readyz',
  'GET /metrics',
  'GET /swagger',
  'GET /swagger/json',
  'GET /swagger/assets/swagger-ui-bundle.js',
  'GET /swagger/assets/swagger-ui.css',
  'OPTIONS /',
  'OPTIONS /*',
]

const FRONTEND_PAGES = ['GET /', 'GET /board', 'GET /app.js', 'GET /live.js', 'GET /board.js', 'GET /operator.js', 'GET /charts.js', 'GET /style.css']
const FRONTEND_READS = ['POST /submitTask', 'GET /isReady', 'GET /getImage', 'GET /task', 'GET /api/config', 'GET /api/status', 'GET /api/events']
/** The console's forms check the token in the handler (a form cannot send a bearer header): open at the gate. */
const FRONTEND_FORMS = ['POST /board/task/retry', 'POST /board/task/delete']
const FRONTEND_OPERATORS = ['GET /api/board', 'GET /api/history', 'GET /api/board/events', 'GET /board/tasks', 'GET /board/task', 'GET /board/image']
const MASTER_READS = ['POST /new', 'GET /isReady', 'GET /get', 'GET /status', 'GET /wait', 'GET /counts', 'GET /history']

function apps(privateResults: boolean) {
  const dir = tempDir()
  const kvStore = openSqliteKvStore(join(dir.path, 'kv'))
  const stack = inProcessStack({ token: TOKEN, privateResults, corsOrigins: '*' })
  const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), inProcess(stack.master))
  const feed = boardFeedOf(master, undefined)
  cleanups.push(async () => {
    feed.close()
    await kvStore.close()
    await stack.close()
    dir.remove()
  })
  const frontend = createFrontendApp({
    master,
    maxUploadBytes: 1 << 20,
    token: TOKEN,
    privateResults,
    corsOrigins: '*',
    boardFeed: feed,
    image: async () => new Response('x'),
    ...quietDeps('frontend'),
  })
  const stats = {
    processed: 0,
    failed: 0,
    peerErrors: 0,
    abandoned: 0,
    renewals: 0,
    inFlight: 0,
    processingMs: 0,
    loops: 1,
    busyLoops: 0,
    startedAt: 0,
    lastTaskAt: undefined,
    claimProblem: undefined,
    closing: false,
  }
  const worker = createWorkerApp({ stats: () => stats, address: () => 'w:1', token: TOKEN, ...quietDeps('worker') })
  const roles = {
    kv: { app: createKvApp({ store: kvStore, token: TOKEN, ...quietDeps('kv') }), open: ['GET /get', 'GET /list'] },
    database: { app: stack.database, open: [] },
    storage: { app: stack.storage, open: privateResults ? [] : ['GET /getImage'] },
    master: { app: stack.master, open: [...MASTER_READS, ...(privateResults ? [] : ['GET /tasks', 'GET /events'])] },
    frontend: { app: frontend, open: [...FRONTEND_PAGES, ...FRONTEND_READS, ...FRONTEND_FORMS, ...(privateResults ? [] : FRONTEND_OPERATORS)] },
    worker: { app: worker, open: ['GET /status', 'GET /history'] },
  } satisfies Record<string, { app: AnyElysia; open: string[] }>
  return { stack, roles, ...roles }
}

/** Whether a route is expected open: listed, or a path's catch-all (405) where every route on the path is open. */
function expectedOpen(app: AnyElysia, open: readonly string[], method: string, path: string): boolean {
  const listed = new Set([...ALWAYS_OPEN, ...open])
  if (method !== 'ALL') return listed.has(`${method} ${path}`)
  const siblings = app.routes.filter((route) => route.path === path && route.method !== 'ALL')
  return siblings.length > 0 && siblings.every((route) => listed.has(`${route.method} ${route.path}`))
}

/**
 * Calls one route without a token; reads no more than the status and the start of the body (some answers stream). A
 * body that Elysia cannot parse is refused (400) before any hook sees the route, so every call carries a JSON one.
 */
async function callWithout(app: AnyElysia, method: string, path: string) {
  const controller = new AbortController()
  const verb = method === 'ALL' ? 'PUT' : method
  const body = verb === 'GET' || verb === 'HEAD' ? null : '{}'
  const headers = body === null ? undefined : { 'content-type': 'application/json' }
  const response = await app.handle(new Request(ORIGIN + path.replace('*', 'anything'), { method: verb, body, headers, signal: controller.signal }))
  const text = response.status === 401 ? await response.text() : ''
  controller.abort()
  await response.body?.cancel().catch(() => {})
  return { status: response.status, body: text, challenge: response.headers.get('www-authenticate') }
}

async function walk(app: AnyElysia, open: readonly string[]) {
  const refused: string[] = []
  const opened: string[] = []
  for (const route of app.routes) {
    const answer = await callWithout(app, route.method, route.path)
    const name = `${route.method} ${route.path}`
    if (expectedOpen(app, open, route.method, route.path)) {
      expect({ name, status: answer.status }).not.toEqual({ name, status: 401 })
      opened.push(name)
    } else {
      expect({ name, status: answer.status, body: answer.body.slice(0, 6) }).toEqual({ name, status: 401, body: 'Error:' })
      refused.push(name)
    }
  }
  return { refused, opened }
}

describe('route access: every route internal unless declared public', () => {
  for (const privateResults of [false, true]) {
    test(`each role's routes${privateResults ? ' with PIXMILL_PRIVATE_RESULTS' : ''}: the non-public refuse a call without the token (401 Error:), the public do not`, async () => {
      const { roles } = apps(privateResults)
      for (const [role, { app, open }] of Object.entries(roles)) {
        const { refused, opened } = await walk(app, open)
        // Every route the table names exists, so that a renamed route cannot slip out of the check.
        for (const name of open) expect({ role, name, present: opened.includes(name) }).toEqual({ role, name, present: true })
        const pathOf = (name: string) => name.slice(name.indexOf(' ') + 1)
        if (role === 'database') expect(opened.filter((name) => !ALWAYS_OPEN.some((always) => pathOf(always) === pathOf(name)))).toEqual([])
        expect(refused.length + opened.length).toBe(app.routes.length)
      }
    }, 60_000)
  }

  test('with private results the console’s pages ask the browser for the token (Basic); its feeds and the API ask for a bearer', async () => {
    const { frontend } = apps(true)
    for (const path of ['/board/tasks', '/board/task', '/board/image']) expect((await callWithout(frontend.app, 'GET', path)).challenge).toStartWith('Basic')
    for (const path of ['/api/board', '/api/history', '/api/retry']) {
      const method = path === '/api/retry' ? 'POST' : 'GET'
      expect((await callWithout(frontend.app, method, path)).challenge).toStartWith('Bearer')
    }
  })

  test('the console’s forms are open at the gate and refuse a missing token themselves', async () => {
    const { frontend, stack } = apps(false)
    // A task the form's page can show: an unknown one would be answered 404 before the token is looked at.
    const upload = await stack.master.handle(new Request(`${ORIGIN}/new`, { method: 'POST', body: PNG }))
    expect(upload.status).toBe(200)
    const answer = await frontend.app.handle(
      new Request(`${ORIGIN}/board/task/retry`, {
        method: 'POST',
        body: new URLSearchParams({ id: await upload.text() }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
    )
    expect(answer.status).toBe(401)
    expect(await answer.text()).toContain('The operator token is missing or wrong.')
  })

  test('a route added without a declaration is internal, even one added after the app was built', async () => {
    const { kv } = apps(false)
    // Regression: routes were internal only when listed by name, so a new route was open until someone listed it.
    const app = kv.app as AnyElysia
    app.get('/added-later', () => 'secret')
    const answer = await callWithout(app, 'GET', '/added-later')
    expect(answer.status).toBe(401)
    expect(answer.body).toStartWith('Error:')
    const { refused } = await walk(app, kv.open)
    expect(refused).toContain('GET /added-later')
    const allowed = await app.handle(new Request(`${ORIGIN}/added-later`, { headers: { authorization: `Bearer ${TOKEN}` } }))
    expect(await allowed.text()).toBe('secret')
  })
})
