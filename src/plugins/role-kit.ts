// The plumbing every role with a port shares: error translation, metrics, health and the Swagger page.
import { Elysia } from 'elysia'
import type { Registry } from 'prom-client'
import type { Logger } from '../shared/logger.ts'
import { authPlugin } from './auth.ts'
import { errorsPlugin } from './errors.ts'
import { type HealthCheck, healthPlugin } from './health.ts'
import { requestMetrics } from './metrics.ts'
import { requestIdPlugin, type RequestIdOptions } from './request-id.ts'
import { swaggerPlugin } from './swagger.ts'
import { roleTracer } from '../shared/tracing.ts'
import { tracingPlugin, type TracingOptions } from './tracing.ts'

export interface RoleKitOptions {
  readonly role: string
  readonly description: string
  readonly log: Logger
  readonly registry: Registry
  readonly health: HealthCheck
  /** `/readyz`'s check, when it says more than `/health`'s (storage: the free disk). Default: `health`. */
  readonly ready?: HealthCheck
  /** Bun's own body limit; set above the role's own limit so that the role answers 413 itself. */
  readonly maxRequestBodySize?: number
  /** PIXMILL_TOKEN: when set, the `internal` routes want it as a Bearer token. */
  readonly token?: string
  /** Routes only other roles (and operators) call. */
  readonly internal?: readonly string[]
  /** A connection idle this long is closed (PIXMILL_IDLE_TIMEOUT_SECONDS). Default 30. */
  readonly idleTimeoutSeconds?: number
  /** See RequestIdOptions.ids. Default `every`. */
  readonly requestIds?: RequestIdOptions['ids']
  /** Which requests with no `traceparent` start a trace, when tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT). Default: none. */
  readonly traceRoots?: TracingOptions['roots']
}

/** A root Elysia app with the shared plugins mounted; the role adds its routes, then `withMethodGuard`. */
export function roleKit(options: RoleKitOptions) {
  const metrics = requestMetrics(options.registry)
  // Off (no OTLP endpoint): no plugin at all, so that a request pays nothing for tracing.
  const tracer = roleTracer(options.role)
  const tracing = tracer === undefined ? undefined : tracingPlugin(tracer, { roots: options.traceRoots })
  const unmatched = tracing === undefined ? metrics.unmatched : (request: Request) => {
    metrics.unmatched(request)
    tracing.unmatched(request)
  }
  const app = new Elysia({
    name: `pixmill.${options.role}`,
    serve: { maxRequestBodySize: options.maxRequestBodySize ?? 1024 * 1024, idleTimeout: options.idleTimeoutSeconds ?? 30 },
  })
    .use(requestIdPlugin({ ids: options.requestIds }))
  // Before the error translation, so that the span is current while an error is logged, and sees its answer.
  return (tracing === undefined ? app : (app.use(tracing.plugin) as unknown as typeof app))
    .use(errorsPlugin(options.log, { onUnmatched: unmatched }))
    .use(authPlugin(options.token, options.internal ?? []))
    .use(metrics.plugin)
    .use(healthPlugin(options.role, options.health, options.ready))
    .use(swaggerPlugin({ title: `pixmill ${options.role}`, description: options.description }))
}
