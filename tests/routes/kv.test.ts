// kv routes through app.handle: exact answers of docs/protocol.md and the contract's errors.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createKvApp } from '../../src/roles/kv/app.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { call } from '../helpers/http.ts'
import { quietDeps } from '../helpers/silent.ts'
import { tempDir } from '../helpers/temp.ts'

let dir: ReturnType<typeof tempDir>
let app: ReturnType<typeof createKvApp>
let store: ReturnType<typeof openSqliteKvStore>
/** The store's clock: tests move it instead of sleeping. */
let now: number
beforeEach(() => {
  dir = tempDir()
  now = Date.now()
  store = openSqliteKvStore(join(dir.path, 'kv'), { now: () => now })
  app = createKvApp({ store, ...quietDeps('kv') })
})
afterEach(async () => {
  await store.close()
  dir.remove()
})

describe('kv: POST /set and GET /get', () => {
  test('set answers `success` and get gives the value back as text', async () => {
    expect(await call(app, 'POST', '/set?key=masterAddress&value=localhost%3A3003')).toMatchObject({ status: 200, text: 'success' })
    const got = await call(app, 'GET', '/get?key=masterAddress')
    expect(got).toMatchObject({ status: 200, text: 'localhost:3003' })
  })

  test('URL-encoded specials round-trip exactly', async () => {
    const key = 'acc key&x=1'
    const value = 'http://h:1/p?q=a&b c'
    await call(app, 'POST', `/set?key=${encodeURIComponent(key)}&value=${encodeURIComponent(value)}`)
    expect((await call(app, 'GET', `/get?key=${encodeURIComponent(key)}`)).text).toBe(value)
  })

  test('an unknown key is 404 with an Error: body', async () => {
    const got = await call(app, 'GET', '/get?key=never')
    expect(got.status).toBe(404)
    expect(got.text).toStartWith('Error:')
  })

  test.each([
    ['GET', '/get'],
    ['GET', '/get?key='],
    ['POST', '/set?key=k'],
    ['POST', '/set?key=k&value='],
    ['POST', '/set?value=v'],
    ['POST', '/set?key=&value=v'],
    ['DELETE', '/remove'],
    ['GET', '/get?key=a&key=b'],
    ['GET', '/get?key=%FF'],
    ['POST', `/set?key=${'k'.repeat(1025)}&value=v`],
    ['POST', `/set?key=k&value=${'v'.repeat(65_537)}`],
  ])('%s %s is 400 with an Error: body and changes nothing', async (method, path) => {
    const got = await call(app, method, path)
    expect(got.status).toBe(400)
    expect(got.text).toStartWith('Error:')
    expect(await store.list()).toEqual([])
  })
})

describe('kv: DELETE /remove and GET /list', () => {
  test('list has one `key : value` line per pair; remove answers success and forgets the pair', async () => {
    await call(app, 'POST', '/set?key=b&value=2')
    await call(app, 'POST', '/set?key=a&value=1')
    expect((await call(app, 'GET', '/list')).text).toBe('a : 1\nb : 2\n')
    expect(await call(app, 'DELETE', '/remove?key=a')).toMatchObject({ status: 200, text: 'success' })
    expect((await call(app, 'GET', '/list')).text).toBe('b : 2\n')
    expect((await call(app, 'GET', '/get?key=a')).status).toBe(404)
  })

  test('a pair set with ttl expires; /list?prefix= lists one family of keys', async () => {
    await call(app, 'POST', '/set?key=masterAddress%2Fm%3A1&value=m%3A1&ttl=1')
    await call(app, 'POST', '/set?key=masterAddress&value=m%3A1')
    expect((await call(app, 'GET', '/list?prefix=masterAddress%2F')).text).toBe('masterAddress/m:1 : m:1\n')
    now += 1001
    expect((await call(app, 'GET', '/get?key=masterAddress%2Fm%3A1')).status).toBe(404)
    expect((await call(app, 'GET', '/list')).text).toBe('masterAddress : m:1\n')
    for (const ttl of ['0', '-1', '1.5', 'x', '100000']) expect((await call(app, 'POST', `/set?key=k&value=v&ttl=${ttl}`)).status).toBe(400)
  })

  test('removing an unknown key is still success', async () => {
    expect(await call(app, 'DELETE', '/remove?key=never')).toMatchObject({ status: 200, text: 'success' })
  })
})

describe('kv: wrong methods and unknown paths', () => {
  test.each([
    ['GET', '/set', 'POST'],
    ['PUT', '/set', 'POST'],
    ['POST', '/get', 'GET, HEAD'],
    ['GET', '/remove', 'DELETE'],
    ['POST', '/list', 'GET, HEAD'],
  ])('%s %s is 405 with Allow: %s and an Error: body', async (method, path, allow) => {
    const got = await call(app, method, `${path}?key=k&value=v`)
    expect(got.status).toBe(405)
    expect(got.headers.get('allow')).toBe(allow)
    expect(got.text).toStartWith('Error:')
  })

  test('an unknown path is 404 with an Error: body', async () => {
    const got = await call(app, 'GET', '/nope')
    expect(got.status).toBe(404)
    expect(got.text).toStartWith('Error:')
  })
})
