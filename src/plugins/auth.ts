// The gate of internal routes: the shared token (PIXMILL_TOKEN), compared in constant time; open when no token is set.

import { createHash, timingSafeEqual } from 'node:crypto'
import { Elysia } from 'elysia'
import { Unauthorized } from '../shared/errors.ts'
import { type AccessTable, OPEN_AT_THE_GATE } from './access.ts'

const digest = (text: string) => createHash('sha256').update(text).digest()

/** What bearerMatches compares against: the token's SHA-256. */
export const tokenDigest = digest

/** Whether `authorization` carries `Bearer <token>`; hashing first makes the comparison length-independent. */
export function bearerMatches(authorization: string | null, expected: Buffer): boolean {
  const given = authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : ''
  return timingSafeEqual(digest(given), expected)
}

/**
 * Whether `authorization` carries the token as `Bearer <token>` or, from a browser's own login prompt, as the password
 * of `Basic` (any user name): the operators' pages work without JavaScript that way.
 */
export function operatorMatches(authorization: string | null, expected: Buffer): boolean {
  if (authorization?.startsWith('Basic ')) {
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8')
    const password = decoded.includes(':') ? decoded.slice(decoded.indexOf(':') + 1) : ''
    return timingSafeEqual(digest(password), expected)
  }
  return bearerMatches(authorization, expected)
}

/** The challenge that makes a browser ask for a user name and password: the operator gives the token as the password. */
const BASIC_CHALLENGE = { 'WWW-Authenticate': 'Basic realm="pixmill operators", charset="UTF-8"' }

/**
 * Requires the token on every route the table does not open (see Access); an `operator-page` is refused with the Basic
 * challenge, so that the browser asks for the token itself. A route missing from the table (defined after finishRole
 * filled it) is internal.
 */
export function authPlugin(token: string | undefined, table: AccessTable) {
  const plugin = new Elysia({ name: 'pixmill.auth' })
  if (token === undefined) return plugin
  const expected = digest(token)
  // Before validation, so that nobody learns anything about an internal endpoint without the token.
  return plugin.onTransform({ as: 'global' }, ({ route, request }) => {
    // Elysia answers HEAD from the GET route; a wrong method lands on the path's catch-all (ALL).
    const method = request.method === 'HEAD' ? 'GET' : request.method
    const access = table.get(`${method} ${route}`) ?? table.get(`ALL ${route}`) ?? 'internal'
    if (OPEN_AT_THE_GATE.has(access) || operatorMatches(request.headers.get('authorization'), expected)) return
    if (access === 'operator-page') throw new Unauthorized('This page is for operators: give PIXMILL_TOKEN as the password.', BASIC_CHALLENGE)
    throw new Unauthorized()
  })
}
