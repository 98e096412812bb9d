// The roles of the original design (the original endpoints of docs/protocol.md and nothing beyond them), in memory,
// to test this project's roles against them: original answers only, unknown query parameters ignored, unknown paths
// answered as Go's router does (`404 page not found`), failures passed on with status 200 where the original roles did.
import type { Server } from 'bun'
import { swapRedGreen } from '../../src/roles/worker/image-work.ts'
import { freePort } from './processes.ts'

type Handler = (request: Request, url: URL) => Response | Promise<Response>
type Routes = Record<string, { readonly method: string; readonly handle: Handler }>

const text = (body: string, status = 200) => new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } })
/** The original roles answer bad input with 400 and `Error:...`. */
const refuse = (message: string, status = 400) => text(`Error: ${message}`, status)

/** An id as the original roles parse it: digits only. */
function idOf(url: URL): number | undefined {
  const raw = url.searchParams.get('id') ?? ''
  return /^\d+$/.test(raw) ? Number(raw) : undefined
}

export interface OriginalRole {
  readonly address: string
  /** Requests by path, in arrival order: what this project's roles asked of it. */
  readonly calls: string[]
  stop(): Promise<void>
}

/** Serves `routes` as Go's `http.HandleFunc` mux does: one handler per path, whatever the method; others 404. */
function serveOriginal(routes: Routes): OriginalRole {
  const port = freePort()
  const calls: string[] = []
  const server: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port,
    maxRequestBodySize: 1024 * 1024 * 1024,
    async fetch(request) {
      const url = new URL(request.url)
      calls.push(url.pathname)
      const route = routes[url.pathname]
      if (!route) return text('404 page not found\n', 404)
      if (request.method !== route.method) return refuse(`Only ${route.method} accepted`)
      return route.handle(request, url)
    },
  })
  return { address: `127.0.0.1:${port}`, calls, stop: () => server.stop(true) }
}

/** Registers `<key>=<address>` in the kv store as the original roles do, once, at start. */
async function register(kv: string, key: string, address: string): Promise<void> {
  const response = await fetch(`http://${kv}/set?key=${key}&value=${address}`, { method: 'POST' })
  if ((await response.text()) !== 'success') throw new Error(`registering ${key} failed`)
}

async function lookUp(kv: string, key: string): Promise<string> {
  const response = await fetch(`http://${kv}/get?key=${key}`)
  if (response.status !== 200) throw new Error(`${key} is not in kv`)
  return response.text()
}

/** The original kv store: `/list` answers every pair, whatever the query asks for; `ttl` means nothing to it. */
export function originalKv(initial: Record<string, string> = {}): OriginalRole & { readonly pairs: Map<string, string> } {
  const pairs = new Map(Object.entries(initial))
  const role = serveOriginal({
    '/get': {
      method: 'GET',
      handle: (_, url) => {
        const value = pairs.get(url.searchParams.get('key') ?? '')
        return value === undefined ? refuse('Key not found.', 404) : text(value)
      },
    },
    '/set': {
      method: 'POST',
      handle: (_, url) => {
        const key = url.searchParams.get('key') ?? ''
        const value = url.searchParams.get('value') ?? ''
        if (!key || !value) return refuse('Wrong input key or value.')
        pairs.set(key, value)
        return text('success')
      },
    },
    '/remove': {
      method: 'DELETE',
      handle: (_, url) => {
        pairs.delete(url.searchParams.get('key') ?? '')
        return text('success')
      },
    },
    '/list': { method: 'GET', handle: () => text([...pairs].map(([key, value]) => `${key} : ${value}\n`).join('')) },
  })
  return { ...role, pairs }
}

interface OriginalTask {
  id: number
  state: 0 | 1 | 2
  /** When the task went to state 1, in ms. */
  since: number
}

/** The original database: `{id, state}` tasks; a task in progress longer than the lease reads as 0 again. */
export async function originalDatabase(kv: string, options: { leaseMs?: number } = {}): Promise<OriginalRole & { readonly tasks: OriginalTask[] }> {
  const leaseMs = options.leaseMs ?? 120_000
  const tasks: OriginalTask[] = []
  const fresh = (task: OriginalTask) => {
    if (task.state === 1 && Date.now() - task.since >= leaseMs) task.state = 0
    return task
  }
  const json = (task: OriginalTask) => text(JSON.stringify({ id: task.id, state: task.state }))
  const role = serveOriginal({
    '/newTask': {
      method: 'POST',
      handle: () => {
        tasks.push({ id: tasks.length, state: 0, since: 0 })
        return text(String(tasks.length - 1))
      },
    },
    '/getById': {
      method: 'GET',
      handle: (_, url) => {
        const task = tasks[idOf(url) ?? -1]
        return task ? json(fresh(task)) : refuse('No task with that id.', 404)
      },
    },
    '/getNewTask': {
      method: 'POST',
      handle: () => {
        const task = tasks.map(fresh).find((t) => t.state === 0)
        if (!task) return refuse('No non-started task.')
        task.state = 1
        task.since = Date.now()
        return json(task)
      },
    },
    '/finishTask': {
      method: 'POST',
      handle: (_, url) => {
        const task = tasks[idOf(url) ?? -1]
        if (!task || fresh(task).state !== 1) return refuse('Wrong input id.')
        task.state = 2
        return text('success')
      },
    },
    '/setById': {
      method: 'POST',
      handle: async (request) => {
        const body = (await request.json().catch(() => undefined)) as { id?: number; state?: number } | undefined
        const task = tasks[body?.id ?? -1]
        if (!task || ![0, 1, 2].includes(body?.state ?? -1)) return refuse('Wrong input.')
        task.state = body!.state as 0 | 1 | 2
        task.since = Date.now()
        return text('success')
      },
    },
    '/list': { method: 'GET', handle: () => text(tasks.map((t) => `${JSON.stringify({ id: t.id, state: fresh(t).state })}\n`).join('')) },
  })
  await register(kv, 'databaseAddress', role.address)
  return { ...role, tasks }
}

/** The original storage: two areas of images by id, in memory. */
export async function originalStorage(kv: string): Promise<OriginalRole & { readonly images: Map<string, Uint8Array<ArrayBuffer>> }> {
  const images = new Map<string, Uint8Array<ArrayBuffer>>()
  const where = (url: URL) => {
    const id = idOf(url)
    const state = url.searchParams.get('state')
    return id === undefined || (state !== 'working' && state !== 'finished') ? undefined : `${state}/${id}`
  }
  const role = serveOriginal({
    '/sendImage': {
      method: 'POST',
      handle: async (request, url) => {
        const key = where(url)
        if (!key) return refuse('Wrong input id or state.')
        images.set(key, new Uint8Array(await request.arrayBuffer()))
        return text('success')
      },
    },
    '/getImage': {
      method: 'GET',
      handle: (_, url) => {
        const key = where(url)
        if (!key) return refuse('Wrong input id or state.')
        const image = images.get(key)
        return image ? new Response(image, { headers: { 'content-type': 'image/png' } }) : refuse('No such image.', 404)
      },
    },
  })
  await register(kv, 'storageAddress', role.address)
  return { ...role, images }
}

/** The original master: looks its peers up once at start, and passes the worker API's answers on with status 200. */
export async function originalMaster(kv: string): Promise<OriginalRole> {
  const database = await lookUp(kv, 'databaseAddress')
  const storage = await lookUp(kv, 'storageAddress')
  const task = async (url: URL) => {
    const response = await fetch(`http://${database}/getById?id=${url.searchParams.get('id') ?? ''}`)
    return response.status === 200 ? ((await response.json()) as { id: number; state: number }) : undefined
  }
  const relay = async (response: Response) => text(await response.text())
  const role = serveOriginal({
    '/new': {
      method: 'POST',
      handle: async (request) => {
        const id = await (await fetch(`http://${database}/newTask`, { method: 'POST' })).text()
        const stored = await (await fetch(`http://${storage}/sendImage?id=${id}&state=working`, { method: 'POST', body: await request.arrayBuffer() })).text()
        return stored === 'success' ? text(id) : refuse(`Storage failed: ${stored}`)
      },
    },
    '/isReady': {
      method: 'GET',
      handle: async (_, url) => {
        const found = await task(url)
        return found ? text(found.state === 2 ? '1' : '0') : refuse('No task with that id.', 404)
      },
    },
    '/get': {
      method: 'GET',
      handle: async (_, url) => {
        const found = await task(url)
        if (found?.state !== 2) return refuse('The task is not finished.', 404)
        return fetch(`http://${storage}/getImage?id=${found.id}&state=finished`)
      },
    },
    '/getNewTask': { method: 'POST', handle: async () => relay(await fetch(`http://${database}/getNewTask`, { method: 'POST' })) },
    '/registerTaskFinished': {
      method: 'POST',
      handle: async (_, url) => relay(await fetch(`http://${database}/finishTask?id=${url.searchParams.get('id') ?? ''}`, { method: 'POST' })),
    },
  })
  await register(kv, 'masterAddress', role.address)
  return role
}

/** kv, database, storage and master of the original design, each registered in that kv. */
export async function startOriginalSystem(options: { leaseMs?: number; kvPairs?: Record<string, string> } = {}) {
  const kv = originalKv(options.kvPairs)
  const database = await originalDatabase(kv.address, options)
  const storage = await originalStorage(kv.address)
  const master = await originalMaster(kv.address)
  return {
    kv,
    database,
    storage,
    master,
    async stop() {
      await Promise.all([master.stop(), storage.stop(), database.stop(), kv.stop()])
    },
  }
}

/**
 * A worker loop of the original design against any kv: plain `/getNewTask`, fetch, swap, store, `/registerTaskFinished`,
 * nothing else (no lease token, no failure report, no renewal). Runs until `signal` aborts.
 */
export async function originalWorkerLoop(kv: string, signal: AbortSignal): Promise<{ done: number[]; errors: string[] }> {
  const master = await lookUp(kv, 'masterAddress')
  const storage = await lookUp(kv, 'storageAddress')
  const done: number[] = []
  const errors: string[] = []
  while (!signal.aborted) {
    try {
      const answer = await (await fetch(`http://${master}/getNewTask`, { method: 'POST', signal })).text()
      if (answer.startsWith('Error:')) {
        await Bun.sleep(20)
        continue
      }
      const { id } = JSON.parse(answer) as { id: number }
      const image = new Uint8Array(await (await fetch(`http://${storage}/getImage?id=${id}&state=working`, { signal })).arrayBuffer())
      const result = await swapRedGreen(image, { maxPixels: 50_000_000 })
      const stored = await (await fetch(`http://${storage}/sendImage?id=${id}&state=finished`, { method: 'POST', body: result, signal })).text()
      if (stored !== 'success') throw new Error(`storing ${id}: ${stored}`)
      const finished = await (await fetch(`http://${master}/registerTaskFinished?id=${id}`, { method: 'POST', signal })).text()
      if (finished !== 'success') throw new Error(`finishing ${id}: ${finished}`)
      done.push(id)
    } catch (error) {
      if (signal.aborted) break
      // The original worker logs, waits and goes on (2 s there).
      errors.push((error as Error).message)
      await Bun.sleep(100)
    }
  }
  return { done, errors }
}
