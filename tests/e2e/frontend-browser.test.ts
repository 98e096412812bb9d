// The page in headless Chromium against every role as a real process: pick and drop PNGs, watch them finish, download, retry.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import sharp from 'sharp'
import { PNG_SIGNATURE } from '../../src/shared/png-header.ts'
import { firstPage, launchBrowser, requireChromium, screenshot } from '../helpers/browser.ts'
import { chunk, encodePng, ihdrChunk } from '../helpers/png.ts'
import { freePort, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { peakRssGrowth } from '../helpers/rss.ts'
import { tempDir } from '../helpers/temp.ts'

requireChromium('frontend-browser')

const dir = tempDir('pixmill-e2e-frontend-')
const at = () => `127.0.0.1:${freePort()}`
const [kv, database, storage, master, frontend] = [at(), at(), at(), at(), at()]
// One attempt, so that an image the worker cannot decode fails at once and shows on the board; room for a big upload.
const env = { PIXMILL_MAX_ATTEMPTS: '1', PIXMILL_MAX_UPLOAD_BYTES: String(256 * 1024 * 1024) }
const roles: RoleProcess[] = []
const contexts: BrowserContext[] = []

const W = 64
const H = 48
const pixel = (x: number, y: number) => [(x * 4) % 256, (y * 5) % 256, 128]
const PNG = encodePng(
  W,
  H,
  2,
  8,
  Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => pixel(x, y))),
)
/** A valid header over data that does not inflate: accepted on upload, refused by the worker. */
const BROKEN = new Uint8Array([
  ...PNG_SIGNATURE,
  ...ihdrChunk(W, H, 8, 2),
  ...chunk('IDAT', new Uint8Array(64).fill(0x55)),
  ...chunk('IEND', new Uint8Array(0)),
])

function launch(name: string, javaScriptEnabled = true): Promise<BrowserContext> {
  return launchBrowser(join(dir.path, name), { javaScriptEnabled, acceptDownloads: true, viewport: { width: 1100, height: 900 } })
}

async function openPage(context: BrowserContext, path: string): Promise<Page> {
  const page = await firstPage(context)
  await page.goto(`http://${frontend}${path}`)
  return page
}

/** The processed image as sharp decodes it: RGBA bytes. */
async function rgba(png: Uint8Array): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true })
  return { width: info.width, height: info.height, data }
}

beforeAll(async () => {
  const opts = (address?: string) => ({ dataDir: dir.path, env, ...(address ? { healthAt: address } : {}) })
  roles.push(await spawnRole('kv', [kv], opts(kv)))
  roles.push(await spawnRole('database', [database, kv], opts(database)))
  roles.push(await spawnRole('storage', [storage, kv], opts(storage)))
  roles.push(await spawnRole('master', [master, kv], opts(master)))
  roles.push(await spawnRole('worker', [kv, '2'], opts()))
  roles.push(await spawnRole('frontend', [kv, frontend], opts(frontend)))
  writeFileSync(join(dir.path, 'gradient.png'), PNG)
  writeFileSync(join(dir.path, 'notes.txt'), 'this is not an image')
}, 60_000)

afterAll(async () => {
  await Promise.allSettled(contexts.map((c) => c.close()))
  await Promise.allSettled(roles.map((r) => r.kill9()))
  dir.remove()
})

describe('e2e: the frontend in headless Chromium', () => {
  test('picked and dropped PNGs upload, finish live, show side by side, and download as the processed PNG; a text file is refused first', async () => {
    const context = await launch('chrome-js')
    contexts.push(context)
    const page = await openPage(context, '/')
    await expect(page.title()).resolves.toContain('pixmill')

    await page.setInputFiles('#uploadfile', [join(dir.path, 'gradient.png'), join(dir.path, 'notes.txt')])
    const refused = page.locator('.task', { hasText: 'notes.txt' })
    await refused.locator('.task-message', { hasText: 'not a PNG' }).waitFor()
    expect(await refused.getAttribute('data-state')).toBe('rejected')

    // Dropping a file on the zone goes the same way as picking one.
    const dropped = await page.evaluateHandle(
      (bytes) => {
        const transfer = new DataTransfer()
        transfer.items.add(new File([new Uint8Array(bytes)], 'dropped.png', { type: 'image/png' }))
        return transfer
      },
      [...PNG],
    )
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: dropped })

    for (const name of ['gradient.png', 'dropped.png']) {
      const card = page.locator('.task', { hasText: name })
      await card.and(page.locator('[data-state="2"]')).waitFor({ timeout: 30_000 })
      // Both images load: the user's own file and the processed one.
      await page.waitForFunction((n) => {
        const card = [...document.querySelectorAll('.task')].find((c) => c.textContent?.includes(n))
        return card && [...card.querySelectorAll('img')].every((img) => (img as HTMLImageElement).naturalWidth > 0)
      }, name)
    }
    // Screen readers hear it too.
    await page.locator('#announcer p', { hasText: 'dropped.png: finished.' }).waitFor()
    await page.locator('#announcer p', { hasText: 'gradient.png: finished.' }).waitFor()
    await screenshot(page, 'frontend-page.png')

    const card = page.locator('.task', { hasText: 'gradient.png' })
    const link = card.locator('a.download')
    expect(await link.getAttribute('download')).toBe('gradient-swapped.png')
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()])
    const bytes = new Uint8Array(readFileSync((await download.path())!))
    const id = (await link.getAttribute('href'))!.split('=')[1]
    expect(bytes).toEqual(new Uint8Array(await (await fetch(`http://${frontend}/getImage?id=${id}`)).arrayBuffer()))
    const out = await rgba(bytes)
    expect([out.width, out.height]).toEqual([W, H])
    for (const [x, y] of [
      [0, 0],
      [17, 9],
      [W - 1, H - 1],
    ] as const) {
      const [r, g, b] = pixel(x, y)
      const at = (y * W + x) * 4
      expect([...out.data.subarray(at, at + 4)]).toEqual([g!, r!, b!, 255])
    }
  }, 90_000)

  test('without JavaScript the plain form uploads and the task page reloads itself until the image is shown', async () => {
    const context = await launch('chrome-nojs', false)
    contexts.push(context)
    const page = await openPage(context, '/')
    await page.setInputFiles('#uploadfile', join(dir.path, 'gradient.png'))
    await Promise.all([page.waitForURL(/\/task\?id=\d+$/), page.click('button[type="submit"]')])
    await page.locator('h1', { hasText: 'Finished' }).waitFor({ timeout: 30_000 })
    await page.waitForFunction(() => (document.querySelector('.result img') as HTMLImageElement | null)?.naturalWidth === 64)
  }, 60_000)

  test('the board shows counts and the failed task with its reason; "Try again" queues it again', async () => {
    const answer = await fetch(`http://${frontend}/submitTask`, {
      method: 'POST',
      body: (() => {
        const f = new FormData()
        f.append('uploadfile', new Blob([BROKEN]), 'broken.png')
        return f
      })(),
    })
    const id = Number(await answer.text())
    expect(answer.status).toBe(200)
    const context = contexts[0]!
    const page = await openPage(context, '/board')
    const row = page.locator('#failed tr', { hasText: String(id) })
    await row.waitFor({ timeout: 30_000 })
    expect(Number(await page.locator('#count-finished').textContent())).toBeGreaterThanOrEqual(2)
    expect(Number(await page.locator('#count-failed').textContent())).toBeGreaterThanOrEqual(1)
    expect((await row.locator('.reason-cell').textContent())!.length).toBeGreaterThan(3)
    // The worker, found through kv and its own port: its address, its two loops, what it has done.
    const workerRow = page.locator('#workers tr', { hasText: '127.0.0.1:' })
    await workerRow.waitFor()
    const cells = await workerRow.locator('td').allTextContents()
    expect(cells[1]).toBe('2')
    expect(Number(cells[3])).toBeGreaterThanOrEqual(2)
    await screenshot(page, 'frontend-board.png')
    await row.getByRole('button', { name: `Try task ${id} again` }).click()
    await page.locator('#action-message', { hasText: `Task ${id} is queued again.` }).waitFor()
  }, 60_000)

  test('"Delete" on the board asks first, then removes a finished task with its images', async () => {
    const form = new FormData()
    form.append('uploadfile', new Blob([PNG]), 'to-delete.png')
    const id = Number(await (await fetch(`http://${frontend}/submitTask`, { method: 'POST', body: form })).text())
    const page = await openPage(contexts[0]!, '/board')
    const button = page.locator('#latest tr', { hasText: String(id) }).getByRole('button', { name: `Delete task ${id}` })
    await button.waitFor({ timeout: 30_000 })
    // Declined: nothing happens.
    page.once('dialog', (dialog) => void dialog.dismiss())
    await button.click()
    expect((await fetch(`http://${frontend}/api/status?id=${id}`)).status).toBe(200)
    page.once('dialog', (dialog) => void dialog.accept())
    await button.click()
    await page.locator('#action-message', { hasText: `Task ${id} is deleted.` }).waitFor()
    expect((await fetch(`http://${frontend}/api/status?id=${id}`)).status).toBe(404)
    expect((await fetch(`http://${storage}/getImage?id=${id}&state=finished`)).status).toBe(404)
    await page.locator('#latest tr', { hasText: `Delete task ${id}` }).waitFor({ state: 'detached' })
  }, 60_000)

  test('"Remove from list" on the page can also delete the task on the server, when the person says so', async () => {
    const page = await openPage(contexts[0]!, '/')
    await page.setInputFiles('#uploadfile', join(dir.path, 'gradient.png'))
    const card = page.locator('.task', { hasText: 'gradient.png' }).and(page.locator('[data-state="2"]'))
    await card.waitFor({ timeout: 30_000 })
    const id = Number((await card.locator('a.download').getAttribute('href'))!.split('=')[1])
    page.once('dialog', (dialog) => void dialog.accept())
    await card.getByRole('button', { name: 'Remove from list' }).click()
    await page.locator('#announcer p', { hasText: 'gradient.png: deleted on the server.' }).waitFor()
    expect(await card.count()).toBe(0)
    expect((await fetch(`http://${frontend}/api/status?id=${id}`)).status).toBe(404)
  }, 60_000)
})

describe('e2e: the frontend streams uploads', () => {
  test('a 160 MiB form goes through to the master as it arrives: the frontend grows by far less than that', async () => {
    const boundary = 'pixmill-big-upload'
    const head = new TextEncoder().encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="uploadfile"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`,
    )
    const png = new Uint8Array([...PNG_SIGNATURE, ...ihdrChunk(100, 100, 8, 2)])
    const tail = new TextEncoder().encode(`\r\n--${boundary}--\r\n`)
    const fileBytes = 160 * 1024 * 1024
    const filler = new Uint8Array(256 * 1024).fill(0x5a)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(head)
        controller.enqueue(png)
        sent = png.byteLength
      },
      pull(controller) {
        if (sent >= fileBytes) {
          controller.enqueue(tail)
          return controller.close()
        }
        const n = Math.min(filler.byteLength, fileBytes - sent)
        controller.enqueue(filler.subarray(0, n))
        sent += n
      },
    })
    const started = performance.now()
    const { result, growth } = await peakRssGrowth([roles.at(-1)!.proc.pid], async () => {
      const response = await fetch(`http://${frontend}/submitTask`, {
        method: 'POST',
        body,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      })
      return { status: response.status, text: await response.text() }
    })
    const seconds = (performance.now() - started) / 1000
    console.log(
      `160 MiB through the frontend in ${seconds.toFixed(2)} s (${(160 / seconds).toFixed(0)} MiB/s); frontend RSS peak growth ${(growth[0]! / 1048576).toFixed(1)} MiB`,
    )
    expect(result.status).toBe(200)
    expect(result.text).toMatch(/^\d+$/)
    // Measured here: 33-75 MiB for 48-300 MiB bodies (the master alone grows about as much); a buffered body would be 160+.
    expect(growth[0]!).toBeLessThan(100 * 1024 * 1024)
  }, 60_000)
})
