// Every request gets an id (the caller's X-Request-Id, or a new one) that logs and calls to peers carry on.
import { Elysia } from 'elysia'
import { acceptedRequestId, enterRequest, REQUEST_ID_HEADER } from '../shared/request-context.ts'

export function requestIdPlugin() {
  return new Elysia({ name: 'pixmill.request-id' }).onRequest(({ request, set }) => {
    const id = acceptedRequestId(request.headers.get(REQUEST_ID_HEADER))
    enterRequest(id)
    set.headers[REQUEST_ID_HEADER] = id
  })
}
