// The plumbing every role with a port shares: error translation, metrics, health, CORS and the Swagger page.
import { type AnyElysia, Elysia } from 'elysia'
import type { Logger } from '../shared/logger.ts'
import type { Registry } from '../shared/prom.ts'
import { roleTracer } from '../shared/tracing.ts'
import { type Access, type AccessTable, accessMacro, accessOf, OPEN_AT_THE_GATE } from './access.ts'
import { authPlugin } from './auth.ts'
import { corsPlugin } from './cors.ts'
import { errorsPlugin } from './errors.ts'
import { type HealthCheck, healthPlugin } from './health.ts'
import { withMethodGuard } from './method-guard.ts'
import { requestMetrics } from './metrics.ts'
import { type RequestIdOptions, requestIdPlugin } from './request-id.ts'
import { BEARER_SCHEME, swaggerPlugin, TASK_KEY_SCHEME } from './swagger.ts'
import { type TracingOptions, tracingPlugin } from './tracing.ts'

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
  /**
   * PIXMILL_TOKEN: when set, every route wants it as a Bearer token unless it declares otherwise (`access`, see
   * access.ts): the public ones say so, so that a route added without a thought is internal.
   */
  readonly token?: string
  /** Routes read private results (`access: 'keyed'`): the OpenAPI document declares the task key. Default false. */
  readonly taskKeys?: boolean
  /** PIXMILL_CORS_ORIGINS: browsers on these origins (or any, `*`) may call the role. Default: none. */
  readonly corsOrigins?: readonly string[] | '*'
  /** A connection idle this long is closed (PIXMILL_IDLE_TIMEOUT_SECONDS). Default 30. */
  readonly idleTimeoutSeconds?: number
  /** See RequestIdOptions.ids. Default `every`. */
  readonly requestIds?: RequestIdOptions['ids']
  /** Which requests with no `traceparent` start a trace, when tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT). Default: none. */
  readonly traceRoots?: TracingOptions['roots']
}

/** What finishRole needs to know of a kit's app: its token, and the table its gate reads. */
const kits = new WeakMap<object, { token?: string; table: AccessTable }>()

/** A root Elysia app with the shared plugins mounted; the role adds its routes, then `finishRole`. */
export function roleKit(options: RoleKitOptions) {
  const metrics = requestMetrics(options.registry)
  // Off (no OTLP endpoint): no plugin at all, so that a request pays nothing for tracing.
  const tracer = roleTracer(options.role)
  const tracing = tracer === undefined ? undefined : tracingPlugin(tracer, { roots: options.traceRoots })
  const unmatched =
    tracing === undefined
      ? metrics.unmatched
      : (request: Request) => {
          metrics.unmatched(request)
          tracing.unmatched(request)
        }
  const table: AccessTable = new Map()
  const app = new Elysia({
    name: `pixmill.${options.role}`,
    serve: { maxRequestBodySize: options.maxRequestBodySize ?? 1024 * 1024, idleTimeout: options.idleTimeoutSeconds ?? 30 },
  })
    .use(requestIdPlugin({ ids: options.requestIds }))
    .use(accessMacro())
  // Before the error translation, so that the span is current while an error is logged, and sees its answer.
  const kit = (tracing === undefined ? app : (app.use(tracing.plugin) as unknown as typeof app))
    .use(errorsPlugin(options.log, { onUnmatched: unmatched }))
    // Before authentication: a browser's preflight carries no token, and is answered here.
    .use(corsPlugin(options.corsOrigins))
    .use(authPlugin(options.token, table))
    .use(metrics.plugin)
    .use(healthPlugin(options.role, options.health, options.ready))
    .use(swaggerPlugin({ title: `pixmill ${options.role}`, description: options.description, taskKeys: options.taskKeys ?? false }))
  kits.set(kit, { token: options.token, table })
  return kit
}

/**
 * Ends a role's app once its routes are defined: a wrong method on a known path gets 405 (withMethodGuard), the gate
 * learns each route's access (undeclared: internal), and each route says in the OpenAPI document what it takes (the
 * token when PIXMILL_TOKEN is set; the task key, or the token, on routes that read a private result).
 */
export function finishRole<App extends AnyElysia>(app: App): App {
  const kit = kits.get(app)
  withMethodGuard(app)
  const byPath = new Map<string, Access[]>()
  for (const route of app.routes) if (route.method !== 'ALL') byPath.set(route.path, [...(byPath.get(route.path) ?? []), accessOf(route)])
  for (const route of app.routes) {
    // A path's catch-all (the 405) is open only where every route on the path is: a wrong method tells nothing then.
    const declared = accessOf(route)
    const access =
      route.method === 'ALL' && declared === 'internal' && (byPath.get(route.path) ?? []).every((a) => OPEN_AT_THE_GATE.has(a)) && byPath.has(route.path)
        ? 'public'
        : declared
    kit?.table.set(`${route.method} ${route.path}`, access)
    const bearer = kit?.token === undefined ? [] : [{ [BEARER_SCHEME]: [] }]
    const security = access === 'keyed' ? [{ [TASK_KEY_SCHEME]: [] }, ...bearer] : access === 'public' || bearer.length === 0 ? undefined : bearer
    if (security === undefined) continue
    const hooks = route.hooks as { detail?: Record<string, unknown> }
    hooks.detail = { ...hooks.detail, security }
  }
  return app
}
