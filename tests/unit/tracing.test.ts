// Tracing settings from the standard OTEL_* variables, and the trace context a task keeps.
import { describe, expect, test } from 'bun:test'
import { ROOT_CONTEXT, trace } from '@opentelemetry/api'
import { AlwaysOffSampler, AlwaysOnSampler, TracerProvider } from '@opentelemetry/sdk-trace'
import { Elysia } from 'elysia'
import { tracingPlugin } from '../../src/plugins/tracing.ts'
import { ConfigError } from '../../src/shared/config.ts'
import {
  acceptedTraceparent,
  contextFromTraceparent,
  currentTraceIds,
  currentTraceparent,
  extractTraceContext,
  injectTraceHeaders,
  outsideTraceContext,
  withTraceContext,
} from '../../src/shared/trace-context.ts'
import { roleTracer, samplerFromEnv, tracingWanted } from '../../src/shared/tracing.ts'

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

describe('tracing settings', () => {
  test('on only with an OTLP endpoint, and off again with OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none', () => {
    expect(tracingWanted({})).toBe(false)
    expect(roleTracer('master', {})).toBeUndefined()
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true)
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true)
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toBe(false)
    expect(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' })).toBe(false)
  })

  test('OTEL_TRACES_SAMPLER and its argument as the specification names them; anything else is refused by name', () => {
    expect(samplerFromEnv({}).toString()).toContain('ParentBased{root=AlwaysOnSampler')
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'always_off' }).toString()).toBe('AlwaysOffSampler')
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).toString()).toBe('TraceIdRatioBased{0.25}')
    expect(samplerFromEnv({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.5' }).toString()).toContain('TraceIdRatioBased{0.5}')
    expect(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(ConfigError)
    expect(() => samplerFromEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/)
    expect(() => roleTracer('unit', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_BSP_SCHEDULE_DELAY: 'soon' })).toThrow(/OTEL_BSP_SCHEDULE_DELAY/)
  })
})

describe('trace context', () => {
  test('a stored traceparent must be a valid version-00 one; forged, truncated or all-zero ones are dropped', () => {
    expect(acceptedTraceparent(TP)).toBe(TP)
    for (const bad of [
      null,
      '',
      TP.slice(0, -1),
      TP.toUpperCase(),
      `01${TP.slice(2)}`,
      `00-${'0'.repeat(32)}-b7ad6b7169203331-01`,
      `00-0af7651916cd43dd8448eb211c80319c-${'0'.repeat(16)}-01`,
      `${TP}; drop table`,
    ]) {
      expect(acceptedTraceparent(bad)).toBeUndefined()
    }
  })

  test('extracted from headers, current in its chain, injected on calls and named in log fields; none outside it', () => {
    expect(extractTraceContext(new Headers({ traceparent: 'garbage' }))).toBeUndefined()
    expect(extractTraceContext(new Headers())).toBeUndefined()
    const context = contextFromTraceparent(TP)!
    expect(trace.getSpanContext(context)).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331' })
    withTraceContext(context, () => {
      const headers = new Headers()
      injectTraceHeaders(headers)
      expect(headers.get('traceparent')).toBe(TP)
      expect(currentTraceparent()).toBe(TP)
      expect(currentTraceIds()).toEqual({ trace_id: '0af7651916cd43dd8448eb211c80319c', span_id: 'b7ad6b7169203331' })
    })
    const outside = new Headers()
    injectTraceHeaders(outside)
    expect(outside.has('traceparent')).toBe(false)
    expect(currentTraceIds()).toBeUndefined()
    withTraceContext(ROOT_CONTEXT, () => expect(currentTraceparent()).toBeUndefined())
  })
})

describe('the tracing plugin', () => {
  const appWith = (sampler: AlwaysOnSampler | AlwaysOffSampler) => {
    const { plugin } = tracingPlugin(new TracerProvider({ sampler }).getTracer('test'), { roots: () => true })
    return new Elysia().use(plugin).get('/where', () => currentTraceparent() ?? 'none')
  }
  const where = async (app: ReturnType<typeof appWith>, headers: HeadersInit = {}) =>
    (await outsideTraceContext(() => app.handle(new Request('http://localhost/where', { headers })))).text()

  test('a sampled root is current for the request; one the sampler leaves out sets no context, so nothing is passed on', async () => {
    expect(await where(appWith(new AlwaysOnSampler()))).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    expect(await where(appWith(new AlwaysOffSampler()))).toBe('none')
  })

  test('a caller’s trace is continued even when it is not sampled, so that the roles behind follow its decision', async () => {
    const unsampled = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00'
    expect(await where(appWith(new AlwaysOffSampler()), { traceparent: unsampled })).toStartWith('00-0af7651916cd43dd8448eb211c80319c-')
  })
})
