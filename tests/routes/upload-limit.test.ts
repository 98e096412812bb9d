// The upload limit per client address (PIXMILL_UPLOADS_PER_MINUTE): master and frontend, behind a proxy or not, and the
// frontend passing its clients on to the master.
import { afterEach, describe, expect, test } from 'bun:test'
import { createPeerFetch } from '../../src/clients/http.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { call, inProcess } from '../helpers/http.ts'
import { TINY_PNG } from '../helpers/png.ts'
import { quietDeps } from '../helpers/silent.ts'
import { type inProcessStack, stackPool } from '../helpers/stack.ts'

const TOKEN = 'limit-route-token-0123456789'
const PNG = TINY_PNG
const stacks = stackPool()
afterEach(() => stacks.closeAll())

const upload = (app: Parameters<typeof call>[0], headers: Record<string, string> = {}) =>
  call(app, 'POST', '/new', PNG, { 'content-type': 'image/png', ...headers })
const from = (address: string) => ({ 'x-forwarded-for': address })
const tasks = async (stack: ReturnType<typeof inProcessStack>) =>
  (await call(stack.database, 'GET', '/list', null, { authorization: `Bearer ${TOKEN}` })).text.split('\n').filter(Boolean).length

describe('master: PIXMILL_UPLOADS_PER_MINUTE', () => {
  test('a flood from one address gets 429 with Retry-After and an Error: body, and leaves no task; other addresses go on', async () => {
    let clock = 0
    const stack = stacks.with({ token: TOKEN, uploadsPerMinute: 3, trustProxy: 1, limitClock: () => clock })
    for (let i = 0; i < 3; i++) expect((await upload(stack.master, from('198.51.100.1'))).status).toBe(200)
    const refused = await upload(stack.master, from('198.51.100.1'))
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('20')
    expect(refused.text).toStartWith('Error: Too many uploads from this address')
    for (let i = 0; i < 20; i++) expect((await upload(stack.master, from('198.51.100.1'))).status).toBe(429)
    expect(await tasks(stack)).toBe(3)
    // Several other addresses, one upload each: none is held back by the flood.
    for (let i = 2; i < 12; i++) expect((await upload(stack.master, from(`198.51.100.${i}`))).status).toBe(200)
    // Its allowance comes back with time: one upload per 20 s.
    clock = 20_000
    expect((await upload(stack.master, from('198.51.100.1'))).status).toBe(200)
    expect((await upload(stack.master, from('198.51.100.1'))).status).toBe(429)
    const metrics = (await call(stack.master, 'GET', '/metrics')).text
    expect(metrics).toMatch(/pixmill_uploads_total\{outcome="limited"[^}]*\} 22/)
  })

  test('unset, there is no limit', async () => {
    const stack = stacks.with({})
    for (let i = 0; i < 30; i++) expect((await upload(stack.master)).status).toBe(200)
  })

  test('X-Forwarded-For from the client itself is not believed unless a proxy is trusted: forging it gains nothing', async () => {
    const stack = stacks.with({ token: TOKEN, uploadsPerMinute: 2 })
    expect((await upload(stack.master, from('203.0.113.1'))).status).toBe(200)
    expect((await upload(stack.master, from('203.0.113.2'))).status).toBe(200)
    expect((await upload(stack.master, from('203.0.113.3'))).status).toBe(429)
  })

  test('a malformed X-Forwarded-For counts against the address the connection came from, not against a made-up one', async () => {
    const stack = stacks.with({ token: TOKEN, uploadsPerMinute: 2, trustProxy: 1 })
    expect((await upload(stack.master, from('not-an-address'))).status).toBe(200)
    expect((await upload(stack.master, from('203.0.113.7, <script>'))).status).toBe(200)
    expect((await upload(stack.master, from('999.999.1.1'))).status).toBe(429)
    expect((await upload(stack.master, from('203.0.113.8'))).status).toBe(200)
  })

  test('a peer with the token names its client in X-Forwarded-For, and is believed; without the token it is not', async () => {
    const stack = stacks.with({ token: TOKEN, uploadsPerMinute: 1 })
    const peer = (address: string) => ({ authorization: `Bearer ${TOKEN}`, ...from(address) })
    expect((await upload(stack.master, peer('192.0.2.1'))).status).toBe(200)
    expect((await upload(stack.master, peer('192.0.2.1'))).status).toBe(429)
    expect((await upload(stack.master, peer('192.0.2.2'))).status).toBe(200)
    expect((await upload(stack.master, { authorization: `Bearer ${TOKEN.slice(1)}`, ...from('192.0.2.3') })).status).toBe(200)
    expect((await upload(stack.master, { authorization: `Bearer ${TOKEN.slice(1)}`, ...from('192.0.2.4') })).status).toBe(429)
  })

  test('over real sockets the socket’s address counts, and only a trusted proxy’s X-Forwarded-For changes that', async () => {
    for (const trustProxy of [0, 1]) {
      const stack = stacks.with({ uploadsPerMinute: 2, trustProxy })
      stack.master.listen({ hostname: '127.0.0.1', port: 0 })
      try {
        const url = `http://127.0.0.1:${stack.master.server!.port}/new`
        const statuses = []
        for (let i = 1; i <= 4; i++) {
          const response = await fetch(url, { method: 'POST', body: PNG, headers: { 'content-type': 'image/png', ...from(`198.51.100.${i}`) } })
          statuses.push(response.status)
          await response.text()
        }
        expect({ trustProxy, statuses }).toEqual({ trustProxy, statuses: trustProxy === 0 ? [200, 200, 429, 429] : [200, 200, 200, 200] })
      } finally {
        await stack.master.stop(true)
      }
    }
  })
})

describe('frontend: PIXMILL_UPLOADS_PER_MINUTE, and its clients passed on to the master', () => {
  function frontendOver(stack: ReturnType<typeof inProcessStack>, options: { uploadsPerMinute?: number; trustProxy?: number } = {}) {
    const master = createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), createPeerFetch({ token: TOKEN, base: inProcess(stack.master) }))
    return createFrontendApp({ master, maxUploadBytes: 64 * 1024, token: TOKEN, ...options, ...quietDeps('frontend') })
  }
  const submit = (app: ReturnType<typeof createFrontendApp>, address: string) => {
    const data = new FormData()
    data.append('uploadfile', new Blob([PNG], { type: 'image/png' }), 'a.png')
    return call(app, 'POST', '/submitTask', data, from(address))
  }

  test('the frontend’s own limit answers 429 with Retry-After before anything reaches the master', async () => {
    const stack = stacks.with({ token: TOKEN })
    const frontend = frontendOver(stack, { uploadsPerMinute: 2, trustProxy: 1 })
    expect((await submit(frontend, '198.51.100.9')).status).toBe(200)
    expect((await submit(frontend, '198.51.100.9')).status).toBe(200)
    const refused = await submit(frontend, '198.51.100.9')
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([429, '30'])
    expect(refused.text).toStartWith('Error:')
    expect((await submit(frontend, '198.51.100.10')).status).toBe(200)
    expect(await tasks(stack)).toBe(3)
  })

  test('uploads through the frontend count against each client at the master, not all against the frontend', async () => {
    const stack = stacks.with({ token: TOKEN, uploadsPerMinute: 2 })
    const frontend = frontendOver(stack, { trustProxy: 1 })
    for (let i = 1; i <= 6; i++) expect((await submit(frontend, `203.0.113.${i}`)).status).toBe(200)
    expect((await submit(frontend, '203.0.113.1')).status).toBe(200)
    // The master's refusal reaches the client with its advice.
    const refused = await submit(frontend, '203.0.113.1')
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([429, '30'])
    expect(refused.text).toStartWith('Error: Too many uploads from this address')
  })
})
