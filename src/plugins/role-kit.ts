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
}

/** A root Elysia app with the shared plugins mounted; the role adds its routes, then `withMethodGuard`. */
export function roleKit(options: RoleKitOptions) {
  const metrics = requestMetrics(options.registry)
  return new Elysia({
    name: `pixmill.${options.role}`,
    serve: { maxRequestBodySize: options.maxRequestBodySize ?? 1024 * 1024, idleTimeout: options.idleTimeoutSeconds ?? 30 },
  })
    .use(requestIdPlugin({ ids: options.requestIds }))
    .use(errorsPlugin(options.log, { onUnmatched: metrics.unmatched }))
    .use(authPlugin(options.token, options.internal ?? []))
    .use(metrics.plugin)
    .use(healthPlugin(options.role, options.health, options.ready))
    .use(swaggerPlugin({ title: `pixmill ${options.role}`, description: options.description }))
}
