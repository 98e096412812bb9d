// W3C trace context per async call chain (a request being served, a task being worked on): on every call between
// roles, with each task from its upload to its worker, and in every log line.
import { AsyncLocalStorage } from 'node:async_hooks'
import { type Attributes, type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api'
import type { W3CTraceContextPropagator } from '@opentelemetry/core'

/** The span context of the work being done, per async call chain (a request being served, a task being worked on). */
const active = new AsyncLocalStorage<Context>()
let w3c: W3CTraceContextPropagator | undefined
/**
 * The W3C propagator, loaded on first use: @opentelemetry/core's entry (all of it, and the semantic conventions) costs
 * a role about 3 MB of resident memory, and a role with tracing off that no traced caller calls never needs it. Its
 * ESM entry, the one `import` loads (the tracing SDK does): a plain require() would load the CommonJS build beside it.
 */
const propagator = () => {
  w3c ??= new (require(Bun.resolveSync('@opentelemetry/core', import.meta.dir)) as typeof import('@opentelemetry/core')).W3CTraceContextPropagator()
  return w3c
}
const headerGetter = {
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
  keys: (carrier: Headers) => [...carrier.keys()],
}
const headerSetter = { set: (carrier: Headers, key: string, value: string) => carrier.set(key, value) }

/** The trace context current in this async chain, if any. */
export function currentTraceContext(): Context | undefined {
  return active.getStore()
}

/** The ids of the current span, for log lines. */
export function currentTraceIds(): { trace_id: string; span_id: string } | undefined {
  const store = active.getStore()
  const span = store && trace.getSpanContext(store)
  return span ? { trace_id: span.traceId, span_id: span.spanId } : undefined
}

/** Runs `fn` with `context` current. */
export function withTraceContext<T>(context: Context, fn: () => T): T {
  return active.run(context, fn)
}

/** Runs `fn` with no trace context current (a role called in-process starts from its request's headers). */
export function outsideTraceContext<T>(fn: () => T): T {
  return active.exit(fn)
}

/** Puts `traceparent` (and `tracestate`) of the current span on a call to a peer; nothing when no span is current. */
export function injectTraceHeaders(headers: Headers): void {
  const store = active.getStore()
  if (store !== undefined) propagator().inject(store, headers, headerSetter)
}

/** The remote parent a request names in a valid `traceparent`; undefined for none or a malformed one. */
export function extractTraceContext(headers: Headers): Context | undefined {
  if (!headers.has('traceparent')) return undefined
  const extracted = propagator().extract(ROOT_CONTEXT, headers, headerGetter)
  return trace.getSpanContext(extracted) ? extracted : undefined
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

/** A `traceparent` fit to be stored with a task (version 00, lower-case hex), or undefined. */
export function acceptedTraceparent(value: string | null | undefined): string | undefined {
  return value && TRACEPARENT.test(value) && !/^00-0{32}-/.test(value) && !/-0{16}-/.test(value) ? value : undefined
}

/** The context a stored `traceparent` names, to continue its trace later (a worker on its task). */
export function contextFromTraceparent(traceparent: string | undefined): Context | undefined {
  return traceparent === undefined ? undefined : extractTraceContext(new Headers({ traceparent }))
}

/** The `traceparent` of the current span, to store with a task. */
export function currentTraceparent(): string | undefined {
  const headers = new Headers()
  injectTraceHeaders(headers)
  return acceptedTraceparent(headers.get('traceparent'))
}

/**
 * Runs `work` in a new span, child of the current one (or of `parent`), current for everything `work` does; the span
 * ends with `work`, marked an error when `work` throws.
 */
export async function inSpan<T>(
  tracer: Tracer,
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? active.getStore() ?? ROOT_CONTEXT
  const span = tracer.startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, parent)
  try {
    return await active.run(trace.setSpan(parent, span), () => work(span))
  } catch (error) {
    span.recordException(error as Error)
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message })
    throw error
  } finally {
    span.end()
  }
}

/** Makes `context` current for the rest of this async chain (at the start of a request). */
export function enterTraceContext(context: Context): void {
  active.enterWith(context)
}
