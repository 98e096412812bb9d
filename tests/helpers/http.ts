// Calling an app in-process the way a client would over the network.
import type { AnyElysia } from 'elysia'
import type { Fetch } from '../../src/clients/http.ts'

/** Elysia reads the path from the URL after the host, so tests use a real-looking origin. */
export const ORIGIN = 'http://localhost'

export interface Answer {
  readonly status: number
  readonly text: string
  readonly headers: Headers
}

/** Sends one request to `app` and reads the whole answer as text. */
export async function call(app: AnyElysia, method: string, path: string, body?: BodyInit | null, headers?: HeadersInit): Promise<Answer> {
  const response = await app.handle(new Request(ORIGIN + path, { method, body: body ?? null, headers }))
  return { status: response.status, text: await response.text(), headers: response.headers }
}

/** A Fetch that hands requests to `app` in-process, for peer clients in tests. */
export function inProcess(app: AnyElysia): Fetch {
  return (request) => app.handle(request)
}
