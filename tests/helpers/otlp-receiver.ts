// An OTLP/HTTP receiver for tests: takes the spans the roles export (JSON bodies on /v1/traces) and keeps them.
import { freePort } from './processes.ts'

export interface ReceivedSpan {
  readonly service: string
  readonly name: string
  readonly kind: number
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly attributes: Record<string, unknown>
  readonly status: number
}

interface AnyValue {
  stringValue?: string
  intValue?: string | number
  boolValue?: boolean
  doubleValue?: number
}
interface KeyValue {
  key: string
  value: AnyValue
}

const anyValue = (v: AnyValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : (v.boolValue ?? v.doubleValue))
const attributes = (list: KeyValue[] | undefined) => Object.fromEntries((list ?? []).map(({ key, value }) => [key, anyValue(value)]))
/** OTLP/JSON carries ids as hex; base64 is taken too, in case an exporter sends the protobuf mapping. */
const hexId = (id: string | undefined) => (!id ? undefined : /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex'))

export function startOtlpReceiver() {
  const spans: ReceivedSpan[] = []
  const port = freePort()
  const server = Bun.serve({
    port,
    hostname: '127.0.0.1',
    async fetch(request) {
      if (new URL(request.url).pathname !== '/v1/traces' || request.method !== 'POST') return new Response('not found', { status: 404 })
      if (!(request.headers.get('content-type') ?? '').includes('json')) return new Response('JSON only', { status: 415 })
      const body = (await request.json()) as {
        resourceSpans?: Array<{ resource?: { attributes?: KeyValue[] }; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }>
      }
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = String(attributes(resourceSpans.resource?.attributes)['service.name'])
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              service,
              name: String(span.name),
              kind: Number(span.kind),
              traceId: hexId(span.traceId as string)!,
              spanId: hexId(span.spanId as string)!,
              parentSpanId: hexId(span.parentSpanId as string | undefined),
              attributes: attributes(span.attributes as KeyValue[]),
              status: Number((span.status as { code?: number } | undefined)?.code ?? 0),
            })
          }
        }
      }
      return Response.json({})
    },
  })
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    inTrace: (traceId: string) => spans.filter((span) => span.traceId === traceId),
    stop: () => server.stop(true),
  }
}
