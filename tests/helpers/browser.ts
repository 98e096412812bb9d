// Headless Chromium for the page tests: Debian's (`apt-get install -y chromium`, installed by .ci/run), or
// PIXMILL_CHROMIUM. Without it the tests fail, they do not skip.
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type BrowserContext, chromium, type LaunchOptions, type Page } from 'playwright-core'

export const CHROMIUM = process.env.PIXMILL_CHROMIUM ?? '/usr/bin/chromium'

/** Where the page tests keep their screenshots (the README's come from there), when set. */
const SHOTS = process.env.PIXMILL_SCREENSHOT_DIR

/** Quiet and offline: no sandbox (root in CI), no GPU, nothing fetched behind the test's back. */
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Throws, naming the suite, when there is no Chromium to run. */
export function requireChromium(suite: string): void {
  if (!existsSync(CHROMIUM)) throw new Error(`${suite}: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set PIXMILL_CHROMIUM)`)
}

/** A browser with its own profile in `profileDir`; `options` as playwright's (viewport, JavaScript, headers...). */
export function launchBrowser(profileDir: string, options: Parameters<typeof chromium.launchPersistentContext>[1] = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, args: ARGS, ...options })
}

/** A browser without a profile, for a context of its own per test. */
export function launchPlainBrowser(options: LaunchOptions = {}) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, ...options })
}

/** The context's first tab (a new one if it has none). */
export async function firstPage(context: BrowserContext): Promise<Page> {
  return context.pages()[0] ?? (await context.newPage())
}

/** A full-page screenshot named `name` in PIXMILL_SCREENSHOT_DIR; nothing when it is unset. */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (!SHOTS) return
  mkdirSync(SHOTS, { recursive: true })
  await page.screenshot({ path: join(SHOTS, name), fullPage: true })
}
