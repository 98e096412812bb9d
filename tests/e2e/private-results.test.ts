// Private results and the upload limit with every role as a real process: keys made by the master and carried by the
// frontend (its page in Chromium too) and the command-line client, refused when missing or wrong, and the frontend's
// clients limited one by one at the master behind it.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { MANIFEST_NAME } from '../../src/cli/manifest.ts'
import { firstPage, launchBrowser, requireChromium } from '../helpers/browser.ts'
import { isSwapOf, smallPng } from '../helpers/cluster.ts'
import { freePort, httpText, REPO_ROOT, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

const TOKEN = 'e2e-private-token-0123456789'
requireChromium('private-results')

const dir = tempDir('pixmill-e2e-private-')
const at = () => `127.0.0.1:${freePort()}`
const [kv, database, storage, master, frontend] = [at(), at(), at(), at(), at()]
// The tests stand in for a proxy in front of master and frontend: X-Forwarded-For names the client.
const env = { PIXMILL_TOKEN: TOKEN, PIXMILL_PRIVATE_RESULTS: '1', PIXMILL_UPLOADS_PER_MINUTE: '3', PIXMILL_TRUST_PROXY: '1' }
const roles: RoleProcess[] = []
let client = 0
/** A client address of its own for each upload, so that only the flood test meets the limit. */
const fresh = () => ({ 'x-forwarded-for': `198.51.100.${++client}` })

beforeAll(async () => {
  const opts = (address?: string) => ({ dataDir: dir.path, env, ...(address ? { healthAt: address } : {}) })
  roles.push(await spawnRole('kv', [kv], opts(kv)))
  roles.push(...(await Promise.all([spawnRole('database', [database, kv], opts(database)), spawnRole('storage', [storage, kv], opts(storage))])))
  roles.push(await spawnRole('master', [master, kv], opts(master)))
  roles.push(...(await Promise.all([spawnRole('worker', [kv, '1'], opts()), spawnRole('frontend', [kv, frontend], opts(frontend))])))
}, 60_000)
afterAll(async () => {
  await Promise.allSettled(roles.map((r) => r.kill9()))
  dir.remove()
})

async function submit(
  png: Uint8Array,
  headers: Record<string, string> = fresh(),
): Promise<{ status: number; id: number; key: string | null; headers: Headers }> {
  const form = new FormData()
  form.append('uploadfile', new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'a.png')
  const response = await fetch(`http://${frontend}/submitTask`, { method: 'POST', body: form, headers })
  return { status: response.status, id: Number(await response.text()), key: response.headers.get('x-task-key'), headers: response.headers }
}

async function bytes(address: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Uint8Array }> {
  const response = await fetch(`http://${address}${path}`, { headers })
  return { status: response.status, body: new Uint8Array(await response.arrayBuffer()) }
}

describe('e2e: private results through master and frontend', () => {
  test('an upload through the frontend is read back with its key only; no other key and no key at all tell it from an unknown id', async () => {
    const png = smallPng(1, 5, 4)
    const mine = await submit(png)
    const theirs = await submit(smallPng(2))
    expect(mine.status).toBe(200)
    expect(mine.key).toMatch(/^[A-Za-z0-9_-]{32}$/)
    const ended = await httpText(master, `/wait?id=${mine.id}&timeout=30`, { headers: { 'x-task-key': mine.key! } })
    expect(JSON.parse(ended.text)).toMatchObject({ id: mine.id, state: 2 })
    const viaFrontend = await bytes(frontend, `/getImage?id=${mine.id}&key=${mine.key}`)
    const viaMaster = await bytes(master, `/get?id=${mine.id}`, { 'x-task-key': mine.key! })
    expect([viaFrontend.status, viaMaster.status]).toEqual([200, 200])
    expect(viaMaster.body).toEqual(viaFrontend.body)
    expect(await isSwapOf(png, viaMaster.body)).toBe(true)

    const unknown = 987654
    const same = (address: string, path: string) => httpText(address, path).then((got) => [got.status, got.text.replace(/\d+/, 'N')])
    const asUnknown = await same(master, `/status?id=${unknown}`)
    expect(asUnknown).toEqual([404, 'Error: No task with id N.'])
    for (const key of ['', `&key=${mine.key!.slice(0, -1)}`, `&key=${theirs.key}`, `&key=${'A'.repeat(32)}`]) {
      for (const path of ['/isReady', '/get', '/status', '/wait'])
        expect([path, key, ...(await same(master, `${path}?id=${mine.id}${key}`))]).toEqual([path, key, ...asUnknown])
      for (const path of ['/isReady', '/getImage', '/api/status'])
        expect([path, key, ...(await same(frontend, `${path}?id=${mine.id}${key}`))]).toEqual([path, key, ...asUnknown])
    }
    // Nor around the master: storage wants the token, the lists are for operators.
    expect((await httpText(storage, `/getImage?id=${mine.id}&state=finished`)).status).toBe(401)
    expect((await httpText(master, '/tasks')).status).toBe(401)
    expect((await httpText(frontend, '/api/board')).status).toBe(401)
    // A worker or an operator, with the token, needs no key.
    expect((await bytes(master, `/get?id=${mine.id}`, { authorization: `Bearer ${TOKEN}` })).status).toBe(200)
  }, 60_000)

  test('the page keeps each upload’s key: the result shows and downloads, and its links carry the key', async () => {
    writeFileSync(join(dir.path, 'mine.png'), smallPng(3, 16, 12))
    const context = await launchBrowser(join(dir.path, 'chrome'), {
      acceptDownloads: true,
      // The page's uploads come from this browser: a client address of its own at the frontend, standing in for a proxy.
      extraHTTPHeaders: { 'x-forwarded-for': '192.0.2.77' },
    })
    try {
      const page = await firstPage(context)
      await page.goto(`http://${frontend}/`)
      await page.setInputFiles('#uploadfile', join(dir.path, 'mine.png'))
      const card = page.locator('.task', { hasText: 'mine.png' })
      await card.and(page.locator('[data-state="2"]')).waitFor({ timeout: 30_000 })
      await page.waitForFunction(() => [...document.querySelectorAll('.task img')].every((img) => (img as HTMLImageElement).naturalWidth > 0))
      const href = (await card.locator('a.download').getAttribute('href'))!
      expect(href).toMatch(/^\/getImage\?id=\d+&key=[A-Za-z0-9_-]{32}$/)
      const [download] = await Promise.all([page.waitForEvent('download'), card.locator('a.download').click()])
      const downloaded = new Uint8Array(readFileSync((await download.path())!))
      expect(await isSwapOf(readFileSync(join(dir.path, 'mine.png')), downloaded)).toBe(true)
      expect((await bytes(frontend, href.replace(/&key=.*/, ''))).status).toBe(404)
    } finally {
      await context.close()
    }
  }, 60_000)

  test('the command-line client keeps each key in its manifest and sends it; `get` and `status` take --key', async () => {
    const input = join(dir.path, 'cli-in')
    const out = join(dir.path, 'cli-out')
    mkdirSync(input, { recursive: true })
    writeFileSync(join(input, 'one.png'), smallPng(4))
    writeFileSync(join(input, 'two.png'), smallPng(5))
    const run = async (args: string[], extra: Record<string, string> = {}) => {
      const proc = Bun.spawn(['bun', 'run', 'src/cli.ts', ...args], {
        cwd: REPO_ROOT,
        env: { ...process.env, PIXMILL_TOKEN: '', PIXMILL_TASK_KEY: '', ...extra },
        stdout: 'pipe',
        stderr: 'pipe',
      })
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      return { code, stdout, stderr }
    }
    const processed = await run(['process', input, '--out', out, '--master', master])
    expect([processed.code, processed.stderr]).toEqual([0, expect.any(String)])
    expect(await isSwapOf(readFileSync(join(input, 'one.png')), readFileSync(join(out, 'one.png')))).toBe(true)
    const entries = JSON.parse(readFileSync(join(out, MANIFEST_NAME), 'utf8')).entries as Record<string, { id: number; key: string; state: string }>
    expect(Object.values(entries).map((e) => [e.state, /^[A-Za-z0-9_-]{32}$/.test(e.key)])).toEqual([
      ['done', true],
      ['done', true],
    ])
    const { id, key } = entries['one.png']!
    const file = join(dir.path, 'got.png')
    expect((await run(['get', String(id), '-o', file, '--master', master, '--key', key])).code).toBe(0)
    expect(readFileSync(file)).toEqual(readFileSync(join(out, 'one.png')))
    expect(JSON.parse((await run(['status', String(id), '--master', master], { PIXMILL_TASK_KEY: key })).stdout).state).toBe(2)
    const refused = await run(['status', String(id), '--master', master])
    expect([refused.code, refused.stderr]).toEqual([1, expect.stringContaining(`No task with id ${id}.`)])
  }, 60_000)
})

describe('e2e: the upload limit behind a proxy', () => {
  test('a flood from one client through the frontend is held back; other clients, through it or not, go on', async () => {
    const flood = { 'x-forwarded-for': '203.0.113.50' }
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await submit(smallPng(10 + i), flood)).status)
    expect(statuses).toEqual([200, 200, 200, 429, 429])
    const refused = await submit(smallPng(20), flood)
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    for (let i = 0; i < 4; i++) expect((await submit(smallPng(30 + i))).status).toBe(200)
    const direct = await fetch(`http://${master}/new`, { method: 'POST', body: smallPng(40), headers: { 'content-type': 'image/png', ...fresh() } })
    expect(direct.status).toBe(200)
  }, 30_000)
})
