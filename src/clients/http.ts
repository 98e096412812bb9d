// The one way roles call each other: plain fetch, with a peer's failure told apart from the caller's mistake.
import { DependencyUnavailable, HttpError, InsufficientStorage, NotOffered } from '../shared/errors.ts'
import { currentRequestId, REQUEST_ID_HEADER } from '../shared/request-context.ts'
import { injectTraceHeaders } from '../shared/trace-context.ts'
import { callInProcess, inProcessHandler } from './in-process.ts'

export type Fetch = (request: Request) => Promise<Response>

/** The default transport: the peer's app itself when it runs in this process, the global fetch otherwise. */
export const peerTransport: Fetch = (request) => {
  const local = inProcessHandler(request.url)
  return local === undefined ? fetch(request) : callInProcess(local, request)
}

/**
 * The transport between roles: every call carries the shared token (PIXMILL_TOKEN, when set), the id of the request or
 * task being served, so that one upload can be followed from role to role in the logs, and, with tracing on, the
 * current span as `traceparent`.
 */
export function createPeerFetch(options: { token?: string; base?: Fetch } = {}): Fetch {
  const base = options.base ?? peerTransport
  const authorization = options.token === undefined ? undefined : `Bearer ${options.token}`
  return (request) => {
    if (authorization !== undefined) request.headers.set('authorization', authorization)
    const requestId = currentRequestId()
    if (requestId !== undefined && !request.headers.has(REQUEST_ID_HEADER)) request.headers.set(REQUEST_ID_HEADER, requestId)
    injectTraceHeaders(request.headers)
    return base(request)
  }
}

export interface CallOptions {
  readonly method?: string
  readonly query?: Record<string, string | number | undefined>
  readonly body?: BodyInit | null
  readonly headers?: Record<string, string>
  readonly signal?: AbortSignal
  /** Milliseconds before the call is abandoned. Default 30000. */
  readonly timeoutMs?: number
}

/** Builds `http://<address><path>?<query>`, leaving out undefined values. */
export function peerUrl(address: string, path: string, query?: CallOptions['query']): string {
  const url = new URL(path, `http://${address}`)
  for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value))
  return url.toString()
}

/**
 * Calls a peer and returns its 2xx/3xx response. A 4xx from the peer is rethrown as the same HttpError (its message
 * without the `Error:` prefix), so that a caller's mistake stays the caller's; a network failure, a time-out or a 5xx
 * becomes DependencyUnavailable; a path the peer does not know (an original role) becomes NotOffered.
 */
export async function callPeer(fetcher: Fetch, peer: string, address: string, path: string, options: CallOptions = {}): Promise<Response> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  let response: Response
  try {
    response = await fetcher(
      new Request(peerUrl(address, path, options.query), {
        method: options.method ?? 'GET',
        body: options.body ?? null,
        headers: options.headers,
        signal,
        // Streaming request bodies need half-duplex; Bun ignores it, the type asks for it.
        ...(options.body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit),
    )
  } catch (error) {
    const refused = (error as { code?: string }).code === 'ECONNREFUSED'
    throw new DependencyUnavailable(`${peer} at ${address} is unreachable: ${(error as Error).message}`, 503, refused)
  }
  if (response.status < 400) return response
  const text = (await response.text().catch(() => '')).trim()
  // Every answer of the contract's errors starts with `Error:`; a bare 404 is a router's (an original role's
  // `404 page not found` for a path beyond the original protocol), and a 501 is a peer passing such a gap on.
  if ((response.status === 404 && !text.startsWith('Error:')) || response.status === 501) {
    const said = text.replace(/^Error:\s*/, '')
    throw new NotOffered(
      response.status === 501 && said
        ? said
        : `The ${peer} at ${address} does not offer ${path} (it answered ${response.status} ${text.slice(0, 80) || 'with no body'}).`,
      path,
    )
  }
  const message = text.replace(/^Error:\s*/, '') || `HTTP ${response.status}`
  // A store with no room is the same answer to the caller's caller: not a failure of the call, and not to be retried.
  if (response.status === 507) throw new InsufficientStorage(message)
  if (response.status < 500) {
    const headers: Record<string, string> = {}
    const allow = response.headers.get('allow')
    if (allow) headers.Allow = allow
    // A 429 passed on keeps its advice, so that the caller's client waits as long as the peer asked.
    const retryAfter = response.headers.get('retry-after')
    if (retryAfter) headers['Retry-After'] = retryAfter
    throw new HttpError(response.status, message, headers)
  }
  throw new DependencyUnavailable(`${peer} at ${address} failed: ${message}`, 502)
}
