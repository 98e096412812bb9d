// An in-process master and storage for worker tests: one fetch handler behind the real peer clients.
import { createMasterWorkerClient } from '../../src/clients/master-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createStorageClient } from '../../src/clients/storage-client.ts'
import { sleep } from '../../src/shared/async.ts'
import { type Clock, systemClock } from '../../src/shared/clock.ts'

export interface FakeTask {
  id: number
  state: number
  lease?: string
  error?: string
}

/**
 * Master and storage as one fetch handler: tasks, images, a log of calls, and injectable network failures.
 * `original`: the master knows only the original endpoints (others answer Go's `404 page not found`) and passes the
 * database's refusals on with status 200, as the original master did. `holdClaims`: `getNewTask?wait=S` is held until
 * a task is added or S seconds pass (on `clock`), as this project's master does.
 */
export function fakeCluster(options: { leases?: boolean; original?: boolean; holdClaims?: boolean; clock?: Clock } = {}) {
  const tasks: FakeTask[] = []
  const images = new Map<string, Uint8Array<ArrayBuffer>>()
  const calls: string[] = []
  /** path -> how many of the next calls fail as if the connection were refused. */
  const failNext: Record<string, number> = {}
  const text = (body: string, status = 200) => new Response(body, { status })
  /** Held claims, woken when a task is added. */
  let added = Promise.withResolvers<void>()
  const fetch = async (request: Request): Promise<Response> => {
    const url = new URL(request.url)
    const q = (k: string) => url.searchParams.get(k) ?? undefined
    calls.push(`${url.pathname}${url.search}`)
    if ((failNext[url.pathname] ?? 0) > 0) {
      failNext[url.pathname]!--
      throw new TypeError('connect ECONNREFUSED')
    }
    const task = tasks.find((t) => t.id === Number(q('id')))
    const owns = task?.state === 1 && task.lease === q('lease')
    if (options.original && ['/registerTaskFailed', '/renewTask', '/releaseTask'].includes(url.pathname)) return text('404 page not found\n', 404)
    switch (url.pathname) {
      case '/getNewTask': {
        const wait = Number(q('wait') ?? 0)
        if (options.holdClaims && wait > 0 && !tasks.some((t) => t.state === 0)) {
          await Promise.race([added.promise, sleep(wait * 1000, request.signal, options.clock ?? systemClock)])
          if (request.signal.aborted) throw new DOMException('The operation was aborted.', 'AbortError')
        }
        const next = tasks.find((t) => t.state === 0)
        if (!next) return text('Error: No non-started task.', options.original ? 200 : 404)
        next.state = 1
        if (options.leases !== false) next.lease = `L${next.id}`
        return text(JSON.stringify({ id: next.id, state: 1, leaseToken: next.lease }))
      }
      case '/registerTaskFinished':
        if (!owns) return text('Error: not your task', 409)
        task!.state = 2
        return text('success')
      case '/registerTaskFailed':
        if (!owns) return text('Error: not your task', 409)
        Object.assign(task!, { state: 3, error: q('error') })
        return text('success')
      case '/renewTask':
        return owns ? text(JSON.stringify(task)) : text('Error: not your task', 409)
      case '/releaseTask':
        if (!owns) return text('Error: not your task', 409)
        task!.state = 0
        return text('success')
      case '/getImage': {
        const image = images.get(`${q('state')}/${q('id')}`)
        return image ? new Response(image, { headers: { 'content-type': 'image/png' } }) : text('Error: no such image', 404)
      }
      case '/sendImage':
        images.set(`${q('state')}/${q('id')}`, new Uint8Array(await request.arrayBuffer()))
        return text('success')
    }
    return text('Error: unknown path', 404)
  }
  return {
    tasks,
    images,
    calls,
    failNext,
    master: createMasterWorkerClient(fixedPeer('masterAddress', 'master:1'), fetch),
    storage: createStorageClient(fixedPeer('storageAddress', 'storage:1'), fetch),
    addTask(png: Uint8Array<ArrayBuffer>): number {
      const id = tasks.length
      tasks.push({ id, state: 0 })
      images.set(`working/${id}`, png)
      added.resolve()
      added = Promise.withResolvers<void>()
      return id
    },
    callsFor: (id: number) => calls.filter((c) => new URLSearchParams(c.split('?')[1]).get('id') === String(id)).map((c) => c.split('?')[0]),
  }
}

export type FakeCluster = ReturnType<typeof fakeCluster>
