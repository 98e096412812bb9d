// A server span per request, child of the caller's `traceparent`, current for everything the request does.
import { ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api'
import { Elysia } from 'elysia'
import { enterTraceContext, extractTraceContext } from '../shared/trace-context.ts'

export interface TracingOptions {
  /**
   * Whether a request that names no parent starts a trace of its own (the edge: master, frontend), by path. Behind the
   * edge a role only continues the traces its callers send, so that heartbeats and claims make no traces.
   */
  readonly roots?: (path: string) => boolean
}

/** Probes, metrics and the API page: polled all the time, worth no span. */
const UNTRACED = new Set(['/health', '/readyz', '/livez', '/metrics'])

const SPAN = Symbol('pixmill.span')
type Spanned = Request & { [SPAN]?: Span }

const pathOf = (url: string) => {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  const end = url.indexOf('?', start)
  return start < 0 ? '/' : url.slice(start, end < 0 ? undefined : end)
}

function end(request: Request, status: number, route?: string) {
  const span = (request as Spanned)[SPAN]
  if (span === undefined) return
  ;(request as Spanned)[SPAN] = undefined
  span.setAttribute('http.response.status_code', status)
  if (route) {
    span.setAttribute('http.route', route)
    span.updateName(`${request.method} ${route}`)
  }
  // Server spans are errors for 5xx only: a 4xx is the caller's mistake, answered as it should be.
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
  span.end()
}

/**
 * The span starts in onRequest and ends when the answer is made (mapResponse, as the request metrics do: the body of a
 * streamed answer may still be on its way). A malformed `traceparent` is ignored, as the W3C specification asks: the
 * request is then a root, where roots are made. `unmatched` ends the span of a path no route has.
 */
export function tracingPlugin(tracer: Tracer, options: TracingOptions = {}) {
  const roots = options.roots ?? (() => false)
  const plugin = new Elysia({ name: 'pixmill.tracing' })
    .onRequest(({ request }) => {
      const path = pathOf(request.url)
      if (UNTRACED.has(path) || path.startsWith('/swagger')) return
      const parent = extractTraceContext(request.headers)
      if (parent === undefined && !roots(path)) return
      const span = tracer.startSpan(
        `${request.method} ${path}`,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': request.method, 'url.path': path, 'url.scheme': 'http' } },
        parent ?? ROOT_CONTEXT,
      )
      // A new trace the sampler left out: nothing to record, and nothing for the roles behind to continue (they start
      // no traces of their own), so no context either: the request costs no more than the sampling decision.
      if (parent === undefined && !span.isRecording()) return
      ;(request as Spanned)[SPAN] = span
      enterTraceContext(trace.setSpan(parent ?? ROOT_CONTEXT, span))
    })
    .mapResponse({ as: 'global' }, ({ request, route, set, responseValue }) => {
      const status = responseValue instanceof Response ? responseValue.status : typeof set.status === 'number' ? set.status : 200
      end(request, status, route && route !== '*' ? route : undefined)
    })
  return { plugin, unmatched: (request: Request) => end(request, 404) }
}
