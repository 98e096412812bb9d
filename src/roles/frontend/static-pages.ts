// The page's files (HTML, CSS, JS), served from src/roles/frontend/page/ as they are: no build step, no CDN.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url))

const TYPES = {
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
} as const

/** The page loads nothing from elsewhere; `blob:` images are the user's own files shown next to the result. */
export const PAGE_SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const

/** The files the frontend serves, by URL path. */
export const PAGE_FILES = {
  '/': 'index.html',
  '/board': 'board.html',
  '/app.js': 'app.js',
  '/live.js': 'live.js',
  '/board.js': 'board.js',
  '/operator.js': 'operator.js',
  '/charts.js': 'charts.js',
  '/style.css': 'style.css',
} as const

export type PagePath = keyof typeof PAGE_FILES

/** Fails at start, naming the file, when one is missing (a broken checkout should not serve a blank page). */
export function checkPageFiles(): void {
  for (const file of Object.values(PAGE_FILES)) {
    if (!existsSync(PAGE_DIR + file)) throw new Error(`frontend: the page file ${PAGE_DIR + file} is missing`)
  }
}

/**
 * One of the page's files; revalidated on every load (`no-cache`) so that a new version shows at once. `fill` puts
 * server-side figures into the text (the upload limit, for a browser without JavaScript).
 */
export async function pageFile(path: PagePath, fill?: Readonly<Record<string, string>>): Promise<Response> {
  const file = PAGE_FILES[path]
  const type = TYPES[file.slice(file.lastIndexOf('.') + 1) as keyof typeof TYPES]
  const headers = { 'content-type': type, 'cache-control': 'no-cache', ...PAGE_SECURITY_HEADERS }
  if (!fill) return new Response(Bun.file(PAGE_DIR + file), { headers })
  let text = await Bun.file(PAGE_DIR + file).text()
  for (const [from, to] of Object.entries(fill)) text = text.replaceAll(from, to)
  return new Response(text, { headers })
}
