// Starting a role: /health says "not yet" until the role is registered in kv, so that healthy means findable.
import { afterAll, expect, test } from 'bun:test'
import { Elysia } from 'elysia'
import { createKvClient } from '../../src/clients/kv-client.ts'
import { serveRole } from '../../src/runtime/serve-role.ts'
import { parseAddress } from '../../src/shared/args.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { manualClock } from '../helpers/manual-clock.ts'
import { freePort } from '../helpers/processes.ts'
import { waitFor } from '../helpers/wait-for.ts'

const kvPort = freePort()
let kvUp = false
let asked = 0
let registered = ''
const kv = Bun.serve({
  port: kvPort,
  hostname: '127.0.0.1',
  fetch(request) {
    asked++
    if (!kvUp) return new Response('Error: not yet', { status: 503 })
    registered += `${new URL(request.url).searchParams.get('key')} `
    return new Response('success')
  },
})
afterAll(() => kv.stop(true))

test('a role answers /health 503 until it has registered in kv, then 200', async () => {
  const port = freePort()
  const app = new Elysia().get('/health', () => ({ role: 'demo', ok: true }))
  const starting = serveRole({
    role: 'demo',
    app,
    listen: parseAddress(`127.0.0.1:${port}`),
    log: silentLogger,
    register: { kv: createKvClient(`127.0.0.1:${kvPort}`), key: 'demoAddress', value: `127.0.0.1:${port}`, waitSeconds: 10 },
  })
  // Listening, and already refused by kv at least once.
  await waitFor('a first try to register', () => asked > 0, 5000, 5)
  const early = await fetch(`http://127.0.0.1:${port}/health`)
  expect(early.status).toBe(503)
  expect(await early.json()).toMatchObject({ role: 'demo', ok: false })
  kvUp = true
  const running = await starting
  expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200)
  expect(registered).toContain(`demoAddress/127.0.0.1:${port} demoAddress `)
  await running.stop()
})

test('the registration is renewed every third of its time to live, on the role’s clock, until the role stops', async () => {
  kvUp = true
  const clock = manualClock()
  const port = freePort()
  const running = await serveRole({
    role: 'demo',
    app: new Elysia().get('/health', () => ({ role: 'demo', ok: true })),
    listen: parseAddress(`127.0.0.1:${port}`),
    log: silentLogger,
    register: { kv: createKvClient(`127.0.0.1:${kvPort}`), key: 'beatAddress', value: `127.0.0.1:${port}`, waitSeconds: 10, ttlSeconds: 15 },
    clock,
  })
  const beats = () => registered.split(' ').filter((key) => key === `beatAddress/127.0.0.1:${port}`).length
  expect(beats()).toBe(1)
  await clock.advance(4999)
  expect(beats()).toBe(1)
  await clock.advance(1)
  await waitFor('the first renewal', () => beats() === 2, 5000, 5)
  await clock.advance(5000)
  await waitFor('the second renewal', () => beats() === 3, 5000, 5)
  // Stopping leaves kv (one more call for the key), and nothing comes after.
  await running.stop()
  const left = beats()
  await clock.advance(15_000)
  expect(beats()).toBe(left)
})
