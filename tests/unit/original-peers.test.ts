// The peer clients against roles of the original protocol: what they trust, what they fall back to, what they report.
import { describe, expect, test } from 'bun:test'
import { createDatabaseClient } from '../../src/clients/database-client.ts'
import { callPeer } from '../../src/clients/http.ts'
import { createKvClient } from '../../src/clients/kv-client.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer, kvPeer, peerHealthy } from '../../src/clients/peer-address.ts'
import { DependencyUnavailable, type HttpError, NotOffered } from '../../src/shared/errors.ts'

/** A role of the original protocol as one fetch handler: `paths` answer, every other path is Go's bare 404. */
function original(paths: Record<string, (url: URL) => Response | Promise<Response>>) {
  const calls: string[] = []
  const fetch = async (request: Request) => {
    const url = new URL(request.url)
    calls.push(url.pathname)
    const answer = paths[url.pathname]
    return answer ? answer(url) : new Response('404 page not found\n', { status: 404 })
  }
  return { fetch, calls }
}

const text = (body: string, status = 200) => new Response(body, { status })

describe('callPeer', () => {
  test('a bare 404 (a router’s, for a path the peer lacks) is NotOffered; a 404 `Error:` is the peer’s own answer', async () => {
    const peer = original({ '/getById': () => text('Error: No task with id 9.', 404) })
    const missing = await callPeer(peer.fetch, 'database', 'db:1', '/tasks').catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(NotOffered)
    expect(missing).toMatchObject({ status: 501, path: '/tasks' })
    const notFound = await callPeer(peer.fetch, 'database', 'db:1', '/getById', { query: { id: 9 } }).catch((e: unknown) => e)
    expect(notFound).not.toBeInstanceOf(NotOffered)
    expect(notFound).toMatchObject({ status: 404, message: 'No task with id 9.' })
  })

  test('a 501 passed on by a peer of this project stays NotOffered, with its message', async () => {
    const peer = original({ '/status': () => text('Error: The database keeps only the original task records.', 501) })
    const error = await callPeer(peer.fetch, 'master', 'm:1', '/status').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(NotOffered)
    expect((error as Error).message).toBe('The database keeps only the original task records.')
  })
})

describe('kv client and lookups against an original kv', () => {
  // The original `/list` answers every pair, whatever the query asks for.
  const pairs = { masterAddress: 'm:1', storageAddress: 's:1', databaseAddress: 'd:1', theme: 'dark' }
  const kv = original({
    '/list': () =>
      text(
        Object.entries(pairs)
          .map(([k, v]) => `${k} : ${v}\n`)
          .join(''),
      ),
    '/get': (url) => {
      const value = pairs[url.searchParams.get('key') as keyof typeof pairs]
      return value ? text(value) : text('Error: not found', 404)
    },
  })
  const client = createKvClient('kv:1', kv.fetch)

  test('list keeps only the pairs under the prefix asked for', async () => {
    expect(await client.list('masterAddress/')).toEqual([])
    expect(await client.list('storage')).toEqual([['storageAddress', 's:1']])
  })

  test('a lookup finds the plain key, never another role’s address', async () => {
    for (const [key, value] of [
      ['masterAddress', 'm:1'],
      ['storageAddress', 's:1'],
    ] as const) {
      const peer = kvPeer(client, key, { attempts: 1 })
      expect([await peer.current(), await peer.current()]).toEqual([value, value])
    }
  })

  test('an original kv keeps pairs for ever (no /health, `ttl` ignored); this project’s kv does not, even while its store is down', async () => {
    expect(await client.expiresPairs()).toBe(false)
    const ours = createKvClient('kv:2', async () => text('{"role":"kv","ok":false}', 503))
    expect(await ours.expiresPairs()).toBe(true)
    // No answer at all: unknown, asked again next time.
    let up = false
    const flaky = createKvClient('kv:3', async () => {
      if (!up) throw new TypeError('connect ECONNREFUSED')
      return text('{"ok":true}')
    })
    await expect(flaky.expiresPairs()).rejects.toThrow('ECONNREFUSED')
    up = true
    expect(await flaky.expiresPairs()).toBe(true)
  })
})

describe('peerHealthy against an original role', () => {
  test('a role without /health that answers is up; one that does not answer is down; a 503 is down', async () => {
    expect(await peerHealthy(fixedPeer('masterAddress', 'm:1'), original({}).fetch)).toBe(true)
    expect(await peerHealthy(fixedPeer('masterAddress', 'm:1'), async () => Promise.reject(new TypeError('refused')))).toBe(false)
    expect(await peerHealthy(fixedPeer('masterAddress', 'm:1'), async () => text('{"ok":false}', 503))).toBe(false)
  })
})

describe('master public client against an original master', () => {
  const ready = new Map([
    [0, '1'],
    [1, '0'],
  ])
  const master = original({
    '/isReady': (url) => {
      const answer = ready.get(Number(url.searchParams.get('id')))
      return answer ? text(answer) : text('Error: No task with that id.', 404)
    },
    '/new': () => text('Error: storage failed', 200),
  })
  const client = createMasterPublicClient(fixedPeer('masterAddress', 'm:1'), master.fetch)

  test('status falls back to /isReady, asking /status once per master rather than on every poll', async () => {
    expect(await client.status(0)).toEqual({ id: 0, state: 2, stateName: 'finished', readinessOnly: true })
    expect(await client.status(1)).toEqual({ id: 1, state: 0, stateName: 'not-finished', readinessOnly: true })
    await expect(client.status(7)).rejects.toMatchObject({ status: 404 })
    expect(master.calls.filter((path) => path === '/status').length).toBe(1)
  })

  test('counts, task lists and retry are NotOffered; an upload answered with something else than an id is a failure', async () => {
    await expect(client.counts()).rejects.toBeInstanceOf(NotOffered)
    await expect(client.tasks()).rejects.toBeInstanceOf(NotOffered)
    await expect(client.tasks({ before: 5 })).rejects.toBeInstanceOf(NotOffered)
    await expect(client.events(1)).rejects.toBeInstanceOf(NotOffered)
    await expect(client.history('day')).rejects.toBeInstanceOf(NotOffered)
    await expect(client.retry(1)).rejects.toBeInstanceOf(NotOffered)
    const upload = await client.submit(new Uint8Array([1, 2, 3])).catch((e: unknown) => e)
    expect(upload).toBeInstanceOf(DependencyUnavailable)
    expect((upload as HttpError).status).toBe(502)
  })
})

describe('database client against an original database', () => {
  let next = 0
  const database = original({
    '/newTask': () => text(String(next++)),
    '/getById': (url) => text(JSON.stringify({ id: Number(url.searchParams.get('id')), state: 2 })),
    '/getNewTask': () => text('Error: No non-started task.', 400),
  })
  const client = createDatabaseClient(fixedPeer('databaseAddress', 'd:1'), database.fetch)

  test('a reservation falls back to /newTask (claimable at once, not held), asking /reserveTask once', async () => {
    expect(await client.reserveTask()).toEqual({ id: 0, held: false })
    expect(await client.reserveTask()).toEqual({ id: 1, held: false })
    expect(database.calls.filter((path) => path === '/reserveTask').length).toBe(1)
  })

  test('an original task record is told apart from this project’s; "no task" is a 404 whatever status it came with', async () => {
    expect(await client.getById(3)).toEqual({ id: 3, state: 2, plain: true })
    await expect(client.getNewTask()).rejects.toMatchObject({ status: 404, message: 'No non-started task.' })
    await expect(client.failTask(3, 'boom')).rejects.toBeInstanceOf(NotOffered)
    await expect(client.events(3)).rejects.toBeInstanceOf(NotOffered)
    await expect(client.history({ since: 0, step: 60_000 })).rejects.toBeInstanceOf(NotOffered)
  })
})
