// Turns every error, ours or Elysia's, into the contract's answer: a status and a text body starting `Error:`.
import { Elysia, type ValidationError } from 'elysia'
import { BadRequest, errorText, HttpError } from '../shared/errors.ts'
import type { Logger } from '../shared/logger.ts'
import { currentRequestId, REQUEST_ID_HEADER } from '../shared/request-context.ts'
import { answeredRequestId } from './request-id.ts'

const TEXT = 'text/plain; charset=utf-8'

function answer(requestId: string | undefined, status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(errorText(message), {
    status,
    headers: { 'content-type': TEXT, ...(requestId ? { [REQUEST_ID_HEADER]: requestId } : {}), ...headers },
  })
}

function validationMessage(error: Readonly<Pick<ValidationError, 'type' | 'customError' | 'valueError'>>): string {
  const where = error.type === 'query' ? 'query' : error.type
  if (typeof error.customError === 'string') return `Invalid ${where}: ${error.customError}`
  const detail = error.valueError
  const field = detail?.path ? detail.path.replace(/^\//, '').replaceAll('/', '.') : ''
  return `Invalid ${where}${field ? ` field ${field}` : ''}: ${detail?.message ?? 'does not match the schema'}`
}

/**
 * What is wrong with a URL's query string, if anything: a key given twice (an id given twice is ambiguous)
 * or a part that is not percent-encoded UTF-8 (Elysia would pass it on undecoded).
 */
export function queryProblem(url: string): string | undefined {
  const q = url.indexOf('?')
  if (q < 0) return undefined
  // The common case, one parameter in plain characters, has nothing to check (this runs on every request).
  if (url.indexOf('&', q) < 0 && url.indexOf('%', q) < 0) return undefined
  const seen = new Set<string>()
  for (const part of url.slice(q + 1).split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const key = eq < 0 ? part : part.slice(0, eq)
    if (seen.has(key)) return `Query parameter ${quote(key)} is given more than once.`
    seen.add(key)
    if (part.includes('%')) {
      try {
        decodeURIComponent(part)
      } catch {
        return `Query parameter ${quote(key)} is not percent-encoded UTF-8.`
      }
    }
  }
  return undefined
}

export interface ErrorsOptions {
  /** Told of each request for a path no route has, answered 404 here (the metrics count it: no route hook sees it). */
  readonly onUnmatched?: (request: Request) => void
}

/** Error translator for a role; `log` gets unexpected errors once, with the request. */
export function errorsPlugin(log: Logger, options: ErrorsOptions = {}) {
  return (
    new Elysia({ name: 'pixmill.errors' })
      // After routing, before validation: so that the answer is counted under its route.
      .onTransform({ as: 'global' }, ({ request }) => {
        const problem = queryProblem(request.url)
        if (problem !== undefined) throw new BadRequest(problem)
      })
      .onError({ as: 'global' }, ({ code, error, request, route, set }) => {
        // A role that makes ids only on demand (kv) makes one for an error answer, which is logged under it.
        const current = currentRequestId()
        const requestId = answeredRequestId(set) ?? current ?? crypto.randomUUID()
        if (error instanceof HttpError) return answer(requestId, error.status, error.message, error.headers)
        switch (code) {
          case 'VALIDATION':
            return answer(requestId, 400, validationMessage(error))
          case 'PARSE':
            return answer(requestId, 400, 'The body could not be parsed as this endpoint expects (see /swagger).')
          case 'NOT_FOUND':
            if (!route) options.onUnmatched?.(request)
            return answer(requestId, 404, `Not found: ${request.method} ${new URL(request.url).pathname}`)
          case 'INVALID_COOKIE_SIGNATURE':
            return answer(requestId, 400, 'Invalid cookie signature.')
        }
        if ('status' in (error as object) && typeof (error as { status: unknown }).status === 'number') {
          const status = (error as { status: number }).status
          if (status >= 400 && status < 500) return answer(requestId, status, (error as Error).message || 'Bad request.')
        }
        // Logged once, here, with the request id (the log mixin adds it where the role propagates ids); the answer names
        // the id but gives no detail.
        log.error({ err: error, method: request.method, url: request.url, ...(current === undefined ? { requestId } : {}) }, 'unexpected error')
        return answer(requestId, 500, `Internal error; it has been logged with request id ${requestId}.`)
      })
  )
}

function quote(key: string): string {
  return JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}...` : key)
}
