// Starting a role: /health says "not yet" until the role is registered in kv, so that healthy means findable.
import { afterAll, expect, test } from 'bun:test'
import { Elysia } from 'elysia'
import { createKvClient } from '../../src/clients/kv-client.ts'
import { parseAddress } from '../../src/shared/args.ts'
import { silentLogger } from '../../src/shared/logger.ts'
import { serveRole } from '../../src/shared/run-role.ts'
import { freePort } from '../helpers/processes.ts'

const kvPort = freePort()
let kvUp = false
let registered = ''
const kv = Bun.serve({
  port: kvPort,
  hostname: '127.0.0.1',
  fetch(request) {
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
  await Bun.sleep(200)
  const early = await fetch(`http://127.0.0.1:${port}/health`)
  expect(early.status).toBe(503)
  expect(await early.json()).toMatchObject({ role: 'demo', ok: false })
  kvUp = true
  const running = await starting
  expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200)
  expect(registered).toContain(`demoAddress/127.0.0.1:${port} demoAddress `)
  await running.stop()
})
