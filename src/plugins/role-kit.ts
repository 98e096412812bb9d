// The plumbing every role with a port shares: error translation, metrics, health and the Swagger page.
import { Elysia } from 'elysia'
import type { Registry } from 'prom-client'
import type { Logger } from '../shared/logger.ts'
import { errorsPlugin } from './errors.ts'
import { healthPlugin, type HealthReport } from './health.ts'
import { metricsPlugin } from './metrics.ts'
import { swaggerPlugin } from './swagger.ts'

export interface RoleKitOptions {
  readonly role: string
  readonly description: string
  readonly log: Logger
  readonly registry: Registry
  readonly health: () => HealthReport | Promise<HealthReport>
  /** Bun's own body limit; set above the role's own limit so that the role answers 413 itself. */
  readonly maxRequestBodySize?: number
}

/** A root Elysia app with the shared plugins mounted; the role adds its routes, then `withMethodGuard`. */
export function roleKit(options: RoleKitOptions) {
  return new Elysia({
    name: `pixmill.${options.role}`,
    serve: { maxRequestBodySize: options.maxRequestBodySize ?? 1024 * 1024 },
  })
    .use(errorsPlugin(options.log))
    .use(metricsPlugin(options.registry))
    .use(healthPlugin(options.role, options.health))
    .use(swaggerPlugin({ title: `pixmill ${options.role}`, description: options.description }))
}
