// The operator's console on the frontend through app.handle, over a real in-process master, database and storage: the
// charts' figures, the task list and a task's page without JavaScript, its images, and the actions' forms.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { createPeerFetch } from '../../src/clients/http.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createStorageClient } from '../../src/clients/storage-client.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { boardFeedOf } from '../../src/roles/frontend/board.ts'
import type { BoardFeed } from '../../src/roles/frontend/board-feed.ts'
import { call, inProcess } from '../helpers/http.ts'
import { encodePng } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { inProcessStack } from '../helpers/stack.ts'

const TOKEN = 'console-secret'
const AUTH = { authorization: `Bearer ${TOKEN}` }
const PNG = encodePng(2, 2, 6, 8, [
  [
    [1, 2, 3, 255],
    [4, 5, 6, 255],
  ],
  [
    [7, 8, 9, 255],
    [10, 11, 12, 255],
  ],
])
let stack: ReturnType<typeof inProcessStack>
let frontend: ReturnType<typeof createFrontendApp>
let feed: BoardFeed
beforeEach(() => {
  stack = inProcessStack({ token: TOKEN, maxAttempts: 1 })
  const fetcher = (app: Parameters<typeof inProcess>[0]) => createPeerFetch({ token: TOKEN, base: inProcess(app) })
  const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), fetcher(stack.master))
  const storage = createStorageClient(fixedPeer('storageAddress', 'storage.local'), fetcher(stack.storage))
  feed = boardFeedOf(master, undefined)
  frontend = createFrontendApp({
    master,
    maxUploadBytes: 1 << 20,
    token: TOKEN,
    boardFeed: feed,
    image: (id, area) => storage.get(id, area),
    ...quietDeps('frontend'),
  })
})
afterEach(async () => {
  feed.close()
  await stack.close()
})

const get = (path: string, headers?: HeadersInit) => call(frontend, 'GET', path, null, headers)
const postForm = (path: string, fields: Record<string, string>, headers?: Record<string, string>) =>
  call(frontend, 'POST', path, new URLSearchParams(fields).toString(), { 'content-type': 'application/x-www-form-urlencoded', ...headers })
const status = (id: string) => call(stack.master, 'GET', `/status?id=${id}`)
const master = (path: string) => call(stack.master, 'POST', path, null, AUTH)
async function upload(): Promise<number> {
  return Number((await call(stack.master, 'POST', '/new', PNG as Uint8Array<ArrayBuffer>)).text)
}
async function fail(id: number) {
  expect(JSON.parse((await master('/getNewTask')).text).id).toBe(id)
  expect((await master(`/registerTaskFailed?id=${id}&error=cannot%20decode`)).text).toBe('success')
}

describe('frontend console: figures and lists', () => {
  test('/api/history counts this test’s uploads in the last hour, by minute; the day by 15 minutes; a bad window is 400', async () => {
    for (let i = 0; i < 3; i++) await upload()
    await fail(0)
    const hour = JSON.parse((await get('/api/history')).text)
    const sum = (key: string) => hour.buckets.reduce((n: number, b: Record<string, number>) => n + (b[key] ?? 0), 0)
    expect(hour.buckets.length).toBe(60)
    expect(sum('created')).toBe(3)
    expect(sum('failed')).toBe(1)
    expect(JSON.parse((await get('/api/history?window=day')).text).buckets.length).toBe(96)
    const bad = await get('/api/history?window=week')
    expect(bad.status).toBe(400)
    expect(bad.text).toStartWith('Error:')
  })

  test('/board/tasks is HTML newest first, filtered by state, paged with before= and limit=; bad filters are 400', async () => {
    for (let i = 0; i < 7; i++) await upload()
    await fail(0)
    const ids = (html: string) => [...html.matchAll(/href="\/board\/task\?id=(\d+)"/g)].map((m) => Number(m[1]))
    const first = await get('/board/tasks?limit=3')
    expect(first.status).toBe(200)
    expect(first.headers.get('content-type')).toStartWith('text/html')
    expect(ids(first.text)).toEqual([6, 5, 4])
    expect(first.text).toContain('href="/board/tasks?before=4&#38;limit=3"')
    expect(ids((await get('/board/tasks?limit=3&before=4')).text)).toEqual([3, 2, 1])
    expect(ids((await get('/board/tasks?state=3')).text)).toEqual([0])
    for (const query of ['state=4', 'limit=0', 'limit=201', 'before=-1', 'before=x']) {
      const bad = await get(`/board/tasks?${query}`)
      expect(bad.status, query).toBe(400)
      expect(bad.text).toStartWith('Error:')
    }
  })

  test('/board/task shows the timeline and both images; an unknown task is a 404 page, a bad id 400', async () => {
    const id = await upload()
    const page = await get(`/board/task?id=${id}`)
    expect(page.status).toBe(200)
    expect(page.text).toContain('Uploaded and queued')
    expect(page.text).toContain(`src="/board/image?id=${id}&amp;area=working"`)
    const image = await frontend.handle(new Request(`http://localhost/board/image?id=${id}&area=working`))
    expect(image.status).toBe(200)
    expect(image.headers.get('content-type')).toBe('image/png')
    expect(new Uint8Array(await image.arrayBuffer())).toEqual(PNG)
    const notYet = await get(`/board/image?id=${id}&area=finished`)
    expect(notYet.status).toBe(404)
    expect(notYet.text).toStartWith('Error:')
    expect((await get('/board/image?id=0&area=../x')).status).toBe(400)
    const unknown = await get('/board/task?id=99')
    expect(unknown.status).toBe(404)
    expect(unknown.headers.get('content-type')).toStartWith('text/html')
    expect((await get('/board/task?id=abc')).status).toBe(400)
  })
})

describe('frontend console: the actions’ forms', () => {
  test('retry wants the token (form field or Authorization); a wrong one is 401 and changes nothing; then 303 to the page', async () => {
    const id = await upload()
    await fail(id)
    const refused = await postForm('/board/task/retry', { id: String(id), token: 'wrong' })
    expect(refused.status).toBe(401)
    expect(refused.text).toContain('The operator token is missing or wrong.')
    expect(JSON.parse((await status(`${id}`)).text).state).toBe(3)
    const done = await postForm('/board/task/retry', { id: String(id), token: TOKEN })
    expect(done.status).toBe(303)
    expect(done.headers.get('location')).toBe(`/board/task?id=${id}&done=retried`)
    expect(JSON.parse((await status(`${id}`)).text).state).toBe(0)
  })

  test('delete wants the box ticked and the token; a waiting task answers 409 on its page and stays', async () => {
    const failed = await upload()
    await fail(failed)
    const waiting = await upload()
    const unticked = await postForm('/board/task/delete', { id: String(waiting), token: TOKEN })
    expect(unticked.status).toBe(400)
    const conflict = await postForm('/board/task/delete', { id: String(waiting), confirm: 'yes' }, { authorization: `Basic ${btoa(`operator:${TOKEN}`)}` })
    expect(conflict.status).toBe(409)
    expect(conflict.text).toContain('<!doctype html>')
    expect(JSON.parse((await status(`${waiting}`)).text).state).toBe(0)
    const done = await postForm('/board/task/delete', { id: String(failed), confirm: 'yes', token: TOKEN })
    expect(done.status).toBe(303)
    expect(done.headers.get('location')).toBe(`/board/tasks?deleted=${failed}`)
    expect((await status(`${failed}`)).status).toBe(404)
    expect((await get(`/board/image?id=${failed}&area=working`)).status).toBe(404)
  })
})
