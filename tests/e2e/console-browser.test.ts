// The operator's console in headless Chromium against every role as a real process, with the token set: charts of what
// the test uploaded, search, filter and paging, a task's page with its timeline and images, retry and delete.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { PNG_SIGNATURE } from '../../src/shared/png-header.ts'
import { launchBrowser, launchPlainBrowser, requireChromium, screenshot } from '../helpers/browser.ts'
import { waitFor } from '../helpers/cluster.ts'
import { chunk, encodePng, ihdrChunk } from '../helpers/png.ts'
import { freePort, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

requireChromium('console-browser')

const TOKEN = 'console-test-token-0123456789'
const dir = tempDir('pixmill-e2e-console-')
const at = () => `127.0.0.1:${freePort()}`
const [kv, database, storage, master, frontend] = [at(), at(), at(), at(), at()]
// One attempt, so that the broken image fails for good at once.
const env = { PIXMILL_MAX_ATTEMPTS: '1', PIXMILL_TOKEN: TOKEN }
const roles: RoleProcess[] = []
let context: BrowserContext

const W = 48
const H = 32
const PNG = encodePng(
  W,
  H,
  2,
  8,
  Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => [x * 5, y * 7, 90])),
)
const BROKEN = new Uint8Array([
  ...PNG_SIGNATURE,
  ...ihdrChunk(W, H, 8, 2),
  ...chunk('IDAT', new Uint8Array(64).fill(0x55)),
  ...chunk('IEND', new Uint8Array(0)),
])

async function upload(png: Uint8Array): Promise<number> {
  const response = await fetch(`http://${master}/new`, { method: 'POST', body: png as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'image/png' } })
  expect(response.status).toBe(200)
  return Number(await response.text())
}

async function state(id: number): Promise<number | undefined> {
  const response = await fetch(`http://${master}/status?id=${id}`)
  return response.status === 200 ? ((await response.json()) as { state: number }).state : undefined
}

const settled = (ids: number[]) =>
  waitFor(`tasks ${ids.join(', ')} to end`, async () => (await Promise.all(ids.map(state))).every((s) => s === 2 || s === 3), 30_000, 50)

async function open(path: string, page?: Page): Promise<Page> {
  const tab = page ?? context.pages()[0] ?? (await context.newPage())
  await tab.goto(`http://${frontend}${path}`)
  return tab
}

let finished: number[] = []
let broken = 0

beforeAll(async () => {
  const opts = (address?: string) => ({ dataDir: dir.path, env, ...(address ? { healthAt: address } : {}) })
  roles.push(await spawnRole('kv', [kv], opts(kv)))
  roles.push(await spawnRole('database', [database, kv], opts(database)))
  roles.push(await spawnRole('storage', [storage, kv], opts(storage)))
  roles.push(await spawnRole('master', [master, kv], opts(master)))
  roles.push(await spawnRole('worker', [kv, '1'], opts()))
  roles.push(await spawnRole('frontend', [kv, frontend], opts(frontend)))
  finished = [await upload(PNG), await upload(PNG), await upload(PNG)]
  broken = await upload(BROKEN)
  await settled([...finished, broken])
  context = await launchBrowser(join(dir.path, 'chrome'), { viewport: { width: 1100, height: 900 } })
}, 90_000)

afterAll(async () => {
  await context?.close().catch(() => {})
  await Promise.allSettled(roles.map((r) => r.kill9()))
  dir.remove()
})

/** The figures of one series of a chart, from its table. */
async function column(page: Page, chart: string, series: number): Promise<number[]> {
  return page.$$eval(
    `#${chart} .chart-table tbody tr`,
    (rows, n) => rows.map((row) => Number((row.querySelectorAll('td')[n] as HTMLElement | undefined)?.dataset.value ?? 0)),
    series,
  )
}

describe('e2e: the operator’s console in headless Chromium', () => {
  test('the charts show the uploads of this test, live; the worker has its line; the day view draws too', async () => {
    const page = await open('/board')
    await page.locator('#chart-tasks svg polyline, #chart-tasks svg circle').first().waitFor({ timeout: 20_000 })
    const uploaded = await column(page, 'chart-tasks', 0)
    // Rates per minute in 1-minute buckets: the sum is the uploads of the last hour.
    expect(uploaded.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4)
    expect((await column(page, 'chart-tasks', 2)).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1)
    await page.locator('#chart-workers .legend li', { hasText: '127.0.0.1:' }).waitFor({ timeout: 20_000 })
    expect((await column(page, 'chart-workers', 0)).some((v) => v > 0)).toBe(true)
    expect(await page.locator('#chart-time svg title').textContent()).toContain('Processing time per image')
    // Live: a new upload shows without a reload.
    const before = (await column(page, 'chart-tasks', 0)).reduce((a, b) => a + b, 0)
    const extra = await upload(PNG)
    await settled([extra])
    await waitFor('the new upload on the chart', async () => (await column(page, 'chart-tasks', 0)).reduce((a, b) => a + b, 0) > before, 30_000, 250)
    finished.push(extra)
    await screenshot(page, 'console-board.png')
    await page.getByRole('button', { name: 'Last day' }).click()
    await page.locator('#charts-title', { hasText: 'The last day' }).waitFor()
    await waitFor('the day’s buckets', async () => (await page.$$('#chart-tasks .chart-table tbody tr')).length === 96, 20_000, 100)
  }, 90_000)

  test('find a task by id from the board, with the keyboard: its timeline and both images', async () => {
    const page = await open('/board')
    const id = finished[0]!
    await page.locator('#find-id').focus()
    await page.keyboard.type(String(id))
    await Promise.all([page.waitForURL(new RegExp(`/board/task\\?id=${id}$`)), page.keyboard.press('Enter')])
    await expect(page.locator('h1').textContent()).resolves.toContain(`Task ${id}`)
    const timeline = await page.locator('#timeline li').allTextContents()
    expect(
      timeline.map((line) =>
        line
          .replace(/^.*UTC\s*/, '')
          .split(' (')[0]!
          .trim(),
      ),
    ).toEqual(['Uploaded and queued', 'Claimed by a worker', 'Finished'])
    for (const area of ['working', 'finished']) {
      await page.waitForFunction(
        (src) => (document.querySelector(`img[src="${src}"]`) as HTMLImageElement | null)?.naturalWidth === 48,
        `/board/image?id=${id}&area=${area}`,
      )
    }
    await screenshot(page, 'console-task.png')
  }, 30_000)

  test('a failed task: its reason on the timeline; retry asks for the token, refuses a wrong one, then queues it again', async () => {
    const page = await open(`/board/task?id=${broken}`)
    await expect(page.locator('#timeline').textContent()).resolves.toContain('for good')
    const retry = page.locator('form[action="/board/task/retry"]')
    await retry.locator('input[name="token"]').fill('not-the-token-at-all')
    await retry.getByRole('button', { name: 'Try again' }).click()
    await page.locator('.notice.bad', { hasText: 'token is missing or wrong' }).waitFor()
    await page.locator('form[action="/board/task/retry"] input[name="token"]').fill(TOKEN)
    await Promise.all([page.waitForURL(/done=retried/), page.locator('form[action="/board/task/retry"]').getByRole('button', { name: 'Try again' }).click()])
    await page.locator('.notice.ok', { hasText: `Task ${broken} is queued again.` }).waitFor()
    await settled([broken])
    await page.reload()
    await expect(page.locator('#timeline').textContent()).resolves.toContain('Put back by an operator')
  }, 45_000)

  test('delete from a task’s page asks first, then the task and its images are gone', async () => {
    const id = finished[1]!
    const page = await open(`/board/task?id=${id}`)
    const form = page.locator('form[action="/board/task/delete"]')
    await form.locator('input[name="token"]').fill(TOKEN)
    // Not ticked: the browser refuses the form, nothing happens.
    await form.getByRole('button', { name: 'Delete' }).click()
    expect(page.url()).toContain(`/board/task?id=${id}`)
    await form.locator('input[name="confirm"]').check()
    await Promise.all([page.waitForURL(/\/board\/tasks\?deleted=/), form.getByRole('button', { name: 'Delete' }).click()])
    await page.locator('.notice.ok', { hasText: `Task ${id} is deleted` }).waitFor()
    expect(await state(id)).toBeUndefined()
    const gone = await open(`/board/task?id=${id}`)
    await expect(gone.locator('h1').textContent()).resolves.toBe(`No task ${id}`)
  }, 30_000)

  test('the task list: filter by state, pages newest first that stay put while new tasks arrive', async () => {
    const more: number[] = []
    for (let i = 0; i < 12; i++) more.push(await upload(PNG))
    const page = await open('/board/tasks?limit=5')
    const ids = async () => (await page.locator('#task-list tbody th a').allTextContents()).map(Number)
    const first = await ids()
    expect(first).toHaveLength(5)
    expect(first).toEqual([...first].sort((a, b) => b - a))
    await Promise.all([page.waitForURL(/before=/), page.getByRole('link', { name: 'Older' }).click()])
    const second = await ids()
    expect(second).toHaveLength(5)
    expect(Math.max(...second)).toBeLessThan(Math.min(...first))
    // New uploads do not move the second page.
    await upload(PNG)
    await upload(PNG)
    await page.reload()
    expect(await ids()).toEqual(second)
    await page.selectOption('#state', '3')
    await Promise.all([page.waitForURL(/state=3/), page.getByRole('button', { name: 'Filter' }).click()])
    const failedRows = await page.locator('#task-list tbody tr').count()
    expect(failedRows).toBeGreaterThanOrEqual(1)
    expect(new Set(await page.locator('#task-list tbody .badge').allTextContents())).toEqual(new Set(['Failed']))
    await settled(more)
  }, 60_000)

  test('without JavaScript the list and a task’s page work; at 400 px wide nothing overflows the page', async () => {
    const plain = await launchPlainBrowser()
    try {
      const tab = await (await plain.newContext({ javaScriptEnabled: false, viewport: { width: 400, height: 800 } })).newPage()
      await tab.goto(`http://${frontend}/board/tasks`)
      expect(await tab.locator('#task-list tbody tr').count()).toBeGreaterThan(0)
      await tab.locator('#find-id').fill(String(finished[0]))
      await Promise.all([tab.waitForURL(/\/board\/task\?id=/), tab.getByRole('button', { name: 'Find' }).click()])
      expect(await tab.locator('#timeline li').count()).toBe(3)
      const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
      expect(overflow).toBeLessThanOrEqual(0)
    } finally {
      await plain.close()
    }
  }, 30_000)
})
