// Request ids: the caller's X-Request-Id, or a new one, carried through the work and back on the answer.
import { Elysia } from 'elysia'
import { acceptedRequestId, enterRequest, REQUEST_ID_HEADER } from '../shared/request-context.ts'

export interface RequestIdOptions {
  /**
   * Every request gets an id, made current for its whole async chain (AsyncLocalStorage) so that log lines and
   * calls to peers carry it, and every answer carries it back. Default true. Off (kv, which calls no peer and logs
   * nothing per request), an id is only echoed when the caller sent one, and made for an error answer; a plain
   * read then costs no context and no extra header, which were a third of a kv read's CPU.
   */
  readonly everyRequest?: boolean
}

export function requestIdPlugin({ everyRequest = true }: RequestIdOptions = {}) {
  const plugin = new Elysia({ name: 'pixmill.request-id' })
  if (!everyRequest) {
    return plugin.onRequest(({ request, set }) => {
      const given = request.headers.get(REQUEST_ID_HEADER)
      if (given !== null) set.headers[REQUEST_ID_HEADER] = acceptedRequestId(given)
    })
  }
  return plugin.onRequest(({ request, set }) => {
    const id = acceptedRequestId(request.headers.get(REQUEST_ID_HEADER))
    enterRequest(id)
    set.headers[REQUEST_ID_HEADER] = id
  })
}

/** The id the plugin put on the answer being made, if it put one there. */
export function answeredRequestId(set: { headers: Record<string, unknown> }): string | undefined {
  const id = set.headers[REQUEST_ID_HEADER]
  return typeof id === 'string' ? id : undefined
}
