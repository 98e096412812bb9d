// Internal endpoints behind the shared token (PIXMILL_TOKEN), compared in constant time; open when no token is set.
import { Elysia } from 'elysia'
import { createHash, timingSafeEqual } from 'node:crypto'
import { Unauthorized } from '../shared/errors.ts'

const digest = (text: string) => createHash('sha256').update(text).digest()

/** What bearerMatches compares against: the token's SHA-256. */
export const tokenDigest = digest

/** Whether `authorization` carries `Bearer <token>`; hashing first makes the comparison length-independent. */
export function bearerMatches(authorization: string | null, expected: Buffer): boolean {
  const given = authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : ''
  return timingSafeEqual(digest(given), expected)
}

/** Requires the token on the routes listed in `internal` (route patterns as declared, e.g. `/set`). */
export function authPlugin(token: string | undefined, internal: readonly string[]) {
  const plugin = new Elysia({ name: 'pixmill.auth' })
  if (token === undefined) return plugin
  const expected = digest(token)
  const guarded = new Set(internal)
  // Before validation, so that nobody learns anything about an internal endpoint without the token.
  return plugin.onTransform({ as: 'global' }, ({ route, request }) => {
    if (guarded.has(route) && !bearerMatches(request.headers.get('authorization'), expected)) throw new Unauthorized()
  })
}
