// Roles in one process call each other through their apps' handlers instead of a socket, with the same results.
import { afterEach, expect, test } from 'bun:test'
import { Elysia } from 'elysia'
import { callPeer, createPeerFetch, peerTransport } from '../../src/clients/http.ts'
import { inProcessHandler, serveInProcess } from '../../src/clients/in-process.ts'
import { serveRole } from '../../src/runtime/serve-role.ts'
import { parseAddress } from '../../src/shared/args.ts'
import { DependencyUnavailable } from '../../src/shared/errors.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { currentRequestId, enterRequest, withRequestId } from '../../src/shared/request-context.ts'
import { freePort } from '../helpers/processes.ts'
import { waitFor } from '../helpers/wait-for.ts'

const undo: Array<() => unknown> = []
afterEach(async () => {
  for (const step of undo.splice(0).reverse()) await step()
})

/** An address nothing listens on: a call that reached the network would be refused. */
function deadAddress(): string {
  return `127.0.0.1:${freePort()}`
}

test('a call to an address served in this process goes to its handler, and to the network once that is undone', async () => {
  const address = deadAddress()
  const seen: string[] = []
  const leave = serveInProcess([address], async (request) => {
    seen.push(`${request.method} ${new URL(request.url).pathname}${new URL(request.url).search} ${request.headers.get('authorization')}`)
    return new Response(await request.text())
  })
  const fetcher = createPeerFetch({ token: 'a-shared-secret-of-some-length' })
  const answer = await callPeer(fetcher, 'demo', address, '/echo', { method: 'POST', query: { id: 7 }, body: 'hello' })
  expect(await answer.text()).toBe('hello')
  expect(seen).toEqual(['POST /echo?id=7 Bearer a-shared-secret-of-some-length'])

  leave()
  expect(inProcessHandler(`http://${address}/echo`)).toBeUndefined()
  const refused = await callPeer(fetcher, 'demo', address, '/echo').catch((error) => error)
  expect(refused).toBeInstanceOf(DependencyUnavailable)
  expect(seen).toHaveLength(1)
})

test('a streamed body reaches the handler as a stream, whole', async () => {
  const address = deadAddress()
  undo.push(serveInProcess([address], async (request) => new Response(String((await request.bytes()).byteLength))))
  const chunks = Array.from({ length: 40 }, (_, i) => new Uint8Array(64 * 1024).fill(i))
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks.shift()
      if (next) controller.enqueue(next)
      else controller.close()
    },
  })
  const answer = await callPeer(peerTransport, 'demo', address, '/upload', { method: 'POST', body })
  expect(await answer.text()).toBe(String(40 * 64 * 1024))
})

test('the callee’s request id stays its own: the caller’s is the same after the call', async () => {
  const address = deadAddress()
  let calleeSaw: string | undefined
  undo.push(
    serveInProcess([address], async () => {
      enterRequest('callee-own-id')
      // Across a turn of the event loop, where another request's context could leak in.
      await new Promise((resolve) => setImmediate(resolve))
      calleeSaw = currentRequestId()
      return new Response('ok')
    }),
  )
  await withRequestId('caller-id', async () => {
    await callPeer(peerTransport, 'demo', address, '/x')
    expect(currentRequestId()).toBe('caller-id')
  })
  expect(calleeSaw).toBe('callee-own-id')
})

test('a handler that never answers is abandoned at the caller’s time-out, as a hung socket would be', async () => {
  const address = deadAddress()
  undo.push(serveInProcess([address], () => new Promise<Response>(() => {})))
  const started = performance.now()
  const error = await callPeer(peerTransport, 'demo', address, '/hang', { timeoutMs: 100 }).catch((e) => e)
  expect(error).toBeInstanceOf(DependencyUnavailable)
  expect(performance.now() - started).toBeLessThan(2000)
})

test('serveRole answers this process’s calls under each loopback name of its port, until it stops', async () => {
  const port = freePort()
  let served = 0
  const app = new Elysia().get('/hello', () => {
    served++
    return 'hi'
  })
  const running = await serveRole({ role: 'demo', app, listen: parseAddress(`:${port}`), log: silentLogger })
  undo.push(() => running.stop())
  for (const host of ['localhost', '127.0.0.1', '[::1]']) {
    expect(inProcessHandler(`http://${host}:${port}/hello`), host).toBeDefined()
    expect(await (await callPeer(peerTransport, 'demo', `${host}:${port}`, '/hello')).text()).toBe('hi')
  }
  expect(served).toBe(3)
  await running.stop()
  expect(inProcessHandler(`http://localhost:${port}/hello`)).toBeUndefined()
})

test('stop() waits for a call in flight from a role of the same process before closing the stores', async () => {
  const port = freePort()
  let release!: () => void
  const held = new Promise<void>((resolve) => (release = resolve))
  let closed = false
  let entered = false
  const app = new Elysia().get('/slow', async () => {
    entered = true
    await held
    return closed ? 'closed too early' : 'done'
  })
  const running = await serveRole({
    role: 'demo',
    app,
    listen: parseAddress(`127.0.0.1:${port}`),
    log: silentLogger,
    close: async () => {
      closed = true
    },
  })
  const call = callPeer(peerTransport, 'demo', `127.0.0.1:${port}`, '/slow')
  await waitFor('the call to reach its handler', () => entered)
  const stopping = running.stop()
  // A close that must not come cannot be polled for: wait until stop() has shut the listener, then give it more turns.
  await waitFor('the listener to close', () =>
    fetch(`http://127.0.0.1:${port}/none`).then(
      () => false,
      () => true,
    ),
  )
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
  expect(closed).toBe(false)
  release()
  expect(await (await call).text()).toBe('done')
  await stopping
  expect(closed).toBe(true)
})
