// The frontend with private results, through app.handle over a real in-process master: the key answered to the uploader,
// carried into the task page and its links, and required on every read although the frontend itself holds the token.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { createPeerFetch } from '../../src/clients/http.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { createTaskWatch, type TaskWatch } from '../../src/roles/frontend/task-watch.ts'
import { call, inProcess, ORIGIN } from '../helpers/http.ts'
import { TINY_PNG, TINY_PNG_SWAPPED } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'

const TOKEN = 'frontend-route-token-0123456789'
const bearer = { authorization: `Bearer ${TOKEN}` }
const PNG = TINY_PNG
const RESULT = TINY_PNG_SWAPPED

let stack: ReturnType<typeof inProcessStack>
let frontend: ReturnType<typeof createFrontendApp>
let watch: TaskWatch
beforeEach(() => {
  stack = inProcessStack({ token: TOKEN, privateResults: true, waitPollMs: 10 })
  // As in production: the frontend calls the master with the token, which alone would let it read every task.
  const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), createPeerFetch({ token: TOKEN, base: inProcess(stack.master) }))
  watch = createTaskWatch({ status: (id, key) => master.status(id, key), minIntervalMs: 20, maxIntervalMs: 100 })
  frontend = createFrontendApp({ master, maxUploadBytes: 64 * 1024, watch, token: TOKEN, privateResults: true, ...quietDeps('frontend') })
})
afterEach(async () => {
  watch.close()
  await stack.close()
})

const get = (path: string, headers?: HeadersInit) => call(frontend, 'GET', path, null, headers)

function form(fields: Record<string, string> = {}): FormData {
  const data = new FormData()
  for (const [name, value] of Object.entries(fields)) data.append(name, value)
  data.append('uploadfile', new Blob([PNG], { type: 'image/png' }), 'a.png')
  return data
}

async function submit(): Promise<{ id: number; key: string }> {
  const got = await call(frontend, 'POST', '/submitTask', form())
  expect(got.status).toBe(200)
  expect(got.headers.get('cache-control')).toBe('no-store')
  return { id: Number(got.text), key: got.headers.get('x-task-key')! }
}

async function finish(id: number) {
  const claim = JSON.parse((await call(stack.master, 'POST', '/getNewTask', null, bearer)).text)
  await stack.storage.handle(new Request(`${ORIGIN}/sendImage?id=${id}&state=finished`, { method: 'POST', body: RESULT, headers: bearer }))
  expect((await call(stack.master, 'POST', `/registerTaskFinished?id=${id}&lease=${claim.leaseToken}`, null, bearer)).text).toBe('success')
}

/** Reads the event stream of `path` until `text` shows, then closes it. */
async function eventsUntil(path: string, text: string): Promise<string> {
  const controller = new AbortController()
  const response = await frontend.handle(new Request(ORIGIN + path, { signal: controller.signal }))
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let seen = ''
  try {
    while (!seen.includes(text)) seen += (await reader.read()).value ?? ''
  } finally {
    controller.abort()
    await reader.cancel()
  }
  return seen
}

describe('frontend: private results', () => {
  test('an upload answers the key the master made, which opens the task at the master too', async () => {
    const { id, key } = await submit()
    expect(key).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(JSON.parse((await call(stack.master, 'GET', `/status?id=${id}&key=${key}`)).text).id).toBe(id)
  })

  test('with its key every read works, and the task page puts the key into its links to the result', async () => {
    const { id, key } = await submit()
    await finish(id)
    expect((await get(`/isReady?id=${id}&key=${key}`)).text).toBe('1')
    expect(JSON.parse((await get(`/api/status?id=${id}`, { 'x-task-key': key })).text).state).toBe(2)
    const image = await frontend.handle(new Request(`${ORIGIN}/getImage?id=${id}&key=${key}`))
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(RESULT)
    const page = await get(`/task?id=${id}&key=${key}`)
    expect(page.status).toBe(200)
    expect(page.text).toContain(`src="/getImage?id=${id}&#38;key=${key}"`)
    expect(page.text).toContain(`href="/getImage?id=${id}&#38;key=${key}"`)
    expect(page.headers.get('referrer-policy')).toBe('no-referrer')
  })

  test('the page form without JavaScript is sent on to the task page with the key', async () => {
    const got = await call(frontend, 'POST', '/submitTask', form({ respond: 'page' }))
    expect(got.status).toBe(303)
    expect(got.headers.get('location')).toBe(`/task?id=${got.headers.get('location')!.match(/id=(\d+)/)![1]}&key=${got.headers.get('x-task-key')}`)
  })

  test('no key, a forged, truncated or another task’s key: 404 in the words of an unknown id, although the frontend has the token', async () => {
    const { id, key } = await submit()
    const other = await submit()
    await finish(id)
    for (const suffix of ['', `&key=${'Q'.repeat(32)}`, `&key=${key.slice(0, -2)}`, `&key=${other.key}`, '&key=']) {
      for (const path of [`/isReady?id=${id}${suffix}`, `/getImage?id=${id}${suffix}`, `/api/status?id=${id}${suffix}`]) {
        expect([path, ...Object.values(await get(path)).slice(0, 2)]).toEqual([path, 404, `Error: No task with id ${id}.`])
      }
      const page = await get(`/task?id=${id}${suffix}`)
      expect([page.status, page.text]).toEqual([404, (await get(`/task?id=987654`)).text.replace('987654', String(id))])
    }
  })

  test('the live stream tells each task with its key, and a task without its key (or with a wrong one) is unknown', async () => {
    const { id, key } = await submit()
    const other = await submit()
    const seen = await eventsUntil(`/api/events?ids=${id},${other.id}&keys=${key}`, `"id":${other.id}`)
    expect(seen).toContain(`event: unknown\ndata: {"id":${other.id}}`)
    await eventsUntil(`/api/events?ids=${id},${other.id}&keys=${key},${key}`, `event: status\ndata: {"id":${id},`)
    const wrong = await eventsUntil(`/api/events?ids=${other.id}&keys=${key}`, 'event: unknown')
    expect(wrong).not.toContain('event: status')
    expect((await get(`/api/events?ids=${id}&keys=not,a;key`)).status).toBe(400)
  })

  test('an operator with the token needs no key, as at the master; with a wrong token the key is still wanted', async () => {
    const { id } = await submit()
    expect((await get(`/api/status?id=${id}`, bearer)).status).toBe(200)
    expect((await get(`/task?id=${id}`, bearer)).status).toBe(200)
    expect((await get(`/api/status?id=${id}`, { authorization: `Bearer ${TOKEN}x` })).status).toBe(404)
  })

  test('the board lists everyone’s tasks, so it is for operators', async () => {
    await submit()
    expect((await get('/api/board')).status).toBe(401)
    expect((await get('/api/board', bearer)).status).toBe(200)
  })
})
