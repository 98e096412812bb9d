// Request ids: the caller's X-Request-Id, or a new one, carried through the work and back on the answer.
import { Elysia } from 'elysia'
import { acceptedRequestId, enterRequest, REQUEST_ID_HEADER } from '../shared/request-context.ts'

export interface RequestIdOptions {
  /**
   * `every` (default): every request gets an id (the caller's, or a new one), made current for its whole async chain
   * (AsyncLocalStorage) so that log lines and calls to peers carry it, and every answer carries it back.
   * `given`: only a request that brings an id has one current and echoed (every role sends one to its peers, so
   * their logs still follow an upload); an error answer gets one made. A plain read from outside then costs no id, no
   * context and no extra header, which were a third of a small read's CPU (kv, the database).
   * `echo`: as `given`, but the id is only echoed, never made current (kv, which calls no peer and logs nothing).
   * `writes`: every request but a GET or HEAD as `every`, reads as `given` (the master: an upload is followed from the
   * first role it reaches; a poll logs nothing).
   */
  readonly ids?: 'every' | 'given' | 'echo' | 'writes'
}

export function requestIdPlugin({ ids = 'every' }: RequestIdOptions = {}) {
  const plugin = new Elysia({ name: 'pixmill.request-id' })
  if (ids !== 'every') {
    return plugin.onRequest(({ request, set }) => {
      const given = request.headers.get(REQUEST_ID_HEADER)
      if (given === null && (ids !== 'writes' || request.method === 'GET' || request.method === 'HEAD')) return
      const id = acceptedRequestId(given)
      if (ids !== 'echo') enterRequest(id)
      set.headers[REQUEST_ID_HEADER] = id
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
