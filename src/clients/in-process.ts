// Roles started in one process call each other through their apps' handlers: the same requests and answers as
// over HTTP, without the sockets, the HTTP parsing and the copies (kv, database, storage and master used 10-14 ms of
// CPU per 512x512 image this way, 15-19 ms as separate processes).
import { untilAborted } from '../shared/async.ts'
import { outsideRequestContext } from '../shared/request-context.ts'
import { outsideTraceContext } from '../shared/trace-context.ts'

export type Handler = (request: Request) => Promise<Response>

const handlers = new Map<string, Handler>()

/** Lets `handle` answer this process's calls to each of `addresses` (`host:port`); returns the undo. */
export function serveInProcess(addresses: readonly string[], handle: Handler): () => void {
  const own = [...new Set(addresses)].filter((address) => !handlers.has(address))
  for (const address of own) handlers.set(address, handle)
  return () => {
    for (const address of own) if (handlers.get(address) === handle) handlers.delete(address)
  }
}

/** The handler serving the `host:port` of `url` in this process, if a role there listens on it. */
export function inProcessHandler(url: string): Handler | undefined {
  if (handlers.size === 0) return undefined
  // `http://host:port/path?query`: the authority ends at the first slash after the scheme's.
  const start = url.indexOf('//') + 2
  const end = url.indexOf('/', start)
  return handlers.get(url.slice(start, end < 0 ? undefined : end))
}

/**
 * Calls `handle` as a socket would: the callee's request context (its request id, its span) stays its own, and the caller's
 * signal (its time-out) abandons the call.
 */
export async function callInProcess(handle: Handler, request: Request): Promise<Response> {
  if (request.signal.aborted) throw request.signal.reason
  return untilAborted(
    outsideRequestContext(() => outsideTraceContext(() => handle(request))),
    request.signal,
  )
}
