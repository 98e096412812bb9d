// Every request gets an id (the caller's X-Request-Id, or a new one); every answer carries it back.
import { Elysia } from 'elysia'
import { acceptedRequestId, enterRequest, REQUEST_ID_HEADER } from '../shared/request-context.ts'

export interface RequestIdOptions {
  /**
   * Makes the id current for the request's whole async chain (AsyncLocalStorage), so that log lines and calls to
   * peers carry it. Default true. A role that calls no peer and logs nothing per request (kv) leaves it off: an
   * entered context costs every later await of the request, about a fifth of a kv read's CPU.
   */
  readonly propagate?: boolean
}

export function requestIdPlugin({ propagate = true }: RequestIdOptions = {}) {
  return new Elysia({ name: 'pixmill.request-id' }).onRequest(({ request, set }) => {
    const id = acceptedRequestId(request.headers.get(REQUEST_ID_HEADER))
    if (propagate) enterRequest(id)
    set.headers[REQUEST_ID_HEADER] = id
  })
}

/** The id of the request being answered: the one the plugin put on the answer, else the current one. */
export function answeredRequestId(set: { headers: Record<string, unknown> }): string | undefined {
  const id = set.headers[REQUEST_ID_HEADER]
  return typeof id === 'string' ? id : undefined
}
