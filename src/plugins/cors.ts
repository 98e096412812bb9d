// Cross-origin access to a role's API from browsers (PIXMILL_CORS_ORIGINS): none unless origins are configured.
import { cors } from '@elysiajs/cors'
import { Elysia } from 'elysia'
import { withAccess } from './access.ts'

/** Headers a page on another origin may send: the task key, the request id, the token of an operator's tool. */
export const CORS_ALLOWED_HEADERS = ['Content-Type', 'X-Task-Key', 'X-Request-Id', 'Authorization', 'Range', 'If-None-Match'] as const

/** Headers a page on another origin may read: the key of its upload, the request id, when to come back. */
export const CORS_EXPOSED_HEADERS = ['X-Task-Key', 'X-Request-Id', 'Retry-After', 'Content-Length', 'ETag'] as const

/**
 * `origins` undefined: nothing is added, so a browser keeps every other origin out. `*` or a list: an allowed origin is
 * answered in `Access-Control-Allow-Origin` (with `Vary: Origin`), a preflight (`OPTIONS`) gets 204 with the methods and
 * headers allowed, and no credentials are ever allowed (the API uses none: keys and tokens travel in headers).
 */
export function corsPlugin(origins: readonly string[] | '*' | undefined) {
  if (origins === undefined) return new Elysia({ name: 'pixmill.cors' })
  const allowed = origins === '*' ? undefined : new Set(origins)
  // Its preflight routes are open: a browser's preflight carries no token (the plugin answers it before routing anyway).
  return withAccess(
    cors({
      // A function rather than the plugin's own `*`: that would answer `Vary: *`, which keeps every answer out of caches.
      origin: (request: Request) => {
        const from = request.headers.get('origin')
        return from !== null && (allowed === undefined || allowed.has(from))
      },
      methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
      allowedHeaders: [...CORS_ALLOWED_HEADERS],
      exposeHeaders: [...CORS_EXPOSED_HEADERS],
      credentials: false,
      maxAge: 600,
    }),
    'public',
  )
}
