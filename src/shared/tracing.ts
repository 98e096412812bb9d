// OpenTelemetry tracing: one tracer provider per role, on only when an OTLP endpoint is set (see trace-context.ts for
// how the context travels).
import type { Tracer } from '@opentelemetry/api'
import type * as OtlpExporter from '@opentelemetry/exporter-trace-otlp-http'
import type * as Resources from '@opentelemetry/resources'
import type * as SdkTrace from '@opentelemetry/sdk-trace'
import type { Sampler, TracerProvider } from '@opentelemetry/sdk-trace'
import { orAfter } from './async.ts'
import { ConfigError } from './config.ts'
import { PACKAGE_VERSION } from './version.ts'

type Env = Record<string, string | undefined>

/**
 * The SDK, loaded the first time a role asks for it: a process without tracing (the default) does not carry it, about
 * 3 MB of resident memory and some start-up less per role.
 */
let sdk: { readonly trace: typeof SdkTrace; readonly resources: typeof Resources; readonly exporter: typeof OtlpExporter } | undefined
function loadSdk() {
  sdk ??= {
    trace: require('@opentelemetry/sdk-trace') as typeof SdkTrace,
    resources: require('@opentelemetry/resources') as typeof Resources,
    exporter: require('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpExporter,
  }
  return sdk
}

function nonNegative(env: Env, name: string): number | undefined {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return undefined
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got ${JSON.stringify(env[name])}`)
  return Number(raw)
}

/** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, as the specification names them; default parentbased_always_on. */
export function samplerFromEnv(env: Env): Sampler {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = loadSdk().trace
  const name = env.OTEL_TRACES_SAMPLER?.trim() || 'parentbased_always_on'
  const argument = env.OTEL_TRACES_SAMPLER_ARG?.trim()
  const ratio = () => {
    if (argument === undefined || argument === '') return 1
    const value = Number(argument)
    if (!(value >= 0 && value <= 1)) throw new ConfigError(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got ${JSON.stringify(argument)}`)
    return value
  }
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler()
    case 'always_off':
      return new AlwaysOffSampler()
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio())
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() })
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() })
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio()) })
    default:
      throw new ConfigError(
        `OTEL_TRACES_SAMPLER must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, got ${JSON.stringify(name)}`,
      )
  }
}

/** Whether the environment asks for traces: an OTLP endpoint set, and neither the SDK nor the exporter turned off. */
export function tracingWanted(env: Env = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return false
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim())
}

const providers = new Map<string, { provider: TracerProvider; tracer: Tracer }>()

/**
 * The role's tracer, or undefined when tracing is off (then nothing is made per request). Each role has its own
 * provider, so that roles sharing a process still export as `pixmill-<role>` (OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES override). The exporter reads the standard OTEL_EXPORTER_OTLP_* variables (endpoint,
 * headers, timeout, compression) and sends OTLP/HTTP with JSON bodies; OTEL_BSP_* tune the batching.
 */
export function roleTracer(role: string, env: Env = process.env): Tracer | undefined {
  if (!tracingWanted(env)) return undefined
  const known = providers.get(role)
  if (known) return known.tracer
  const { trace, resources, exporter } = loadSdk()
  const { BatchSpanProcessor, TracerProvider } = trace
  const { defaultResource, detectResources, envDetector, resourceFromAttributes } = resources
  const { OTLPTraceExporter } = exporter
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({ 'service.name': `pixmill-${role}`, 'service.namespace': 'pixmill', 'service.version': PACKAGE_VERSION, 'pixmill.role': role }),
    )
    .merge(detectResources({ detectors: [envDetector] }))
  const provider = new TracerProvider({
    resource,
    sampler: samplerFromEnv(env),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter(),
        scheduledDelayMillis: nonNegative(env, 'OTEL_BSP_SCHEDULE_DELAY'),
        exportTimeoutMillis: nonNegative(env, 'OTEL_BSP_EXPORT_TIMEOUT'),
        maxQueueSize: nonNegative(env, 'OTEL_BSP_MAX_QUEUE_SIZE'),
        maxExportBatchSize: nonNegative(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
      }),
    ],
  })
  const tracer = provider.getTracer('pixmill', PACKAGE_VERSION)
  providers.set(role, { provider, tracer })
  return tracer
}

/** Sends the role's spans still queued and stops its provider (when the role stops); bounded, never throws. */
export async function stopRoleTracer(role: string): Promise<void> {
  const known = providers.get(role)
  if (!known) return
  providers.delete(role)
  await orAfter(
    known.provider.shutdown().catch(() => {}),
    5000,
    undefined,
  )
}
