// GET /metrics in Prometheus text format: requests and latencies per route, plus each role's own figures.
import { Elysia } from 'elysia'
import { Gauge, Registry } from 'prom-client'
import { HttpMetrics } from './http-metrics.ts'

/** One registry per role, so several roles in one process keep their figures apart. */
export function createMetricsRegistry(role: string): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  // prom-client's default set reads Node's event-loop monitor, which Bun does not fill in (it prints `Nan`); keep to what Bun reports.
  new Gauge({
    name: 'pixmill_process_resident_memory_bytes',
    help: 'Resident memory of the process, in bytes.',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss())
    },
  })
  new Gauge({
    name: 'pixmill_process_cpu_seconds',
    help: 'CPU time the process has used, in seconds.',
    labelNames: ['mode'],
    registers: [registry],
    collect() {
      const { user, system } = process.cpuUsage()
      this.set({ mode: 'user' }, user / 1e6)
      this.set({ mode: 'system' }, system / 1e6)
    },
  })
  return registry
}

/** When a request came in, kept on the Request itself: a WeakMap costs about 5 % of a small read's CPU. */
const STARTED_AT = Symbol('pixmill.startedAt')
type Stamped = Request & { [STARTED_AT]?: number }

/**
 * Requests and latencies per method, route and status. `plugin` counts every answer made in a route; mount it after
 * errorsPlugin, whose error answers it then sees. A path no route has never reaches a route's hooks: errorsPlugin
 * answers it, and gives its request to `unmatched`.
 */
export function requestMetrics(registry: Registry) {
  const http = new HttpMetrics()
  http.register(registry)
  const secondsSince = (request: Request) => {
    const begun = (request as Stamped)[STARTED_AT]
    return begun === undefined ? undefined : (performance.now() - begun) / 1000
  }
  const unmatched = (request: Request) => http.record(request.method, 'unmatched', 404, secondsSince(request))
  // The hooks take their fields by name: a hook that hands Elysia's whole context to a function makes Elysia
  // prepare everything (cookies, headers) for every request of every route.
  const plugin = new Elysia({ name: `pixmill.metrics` })
    .onRequest(({ request }) => {
      const stamped: Stamped = request
      stamped[STARTED_AT] = performance.now()
    })
    // mapResponse, not onAfterResponse: Elysia runs the latter from a setImmediate per request, about a fifth of the
    // CPU of a small read. mapResponse sees each answer once, an error's after errorsPlugin made it; it changes nothing.
    .mapResponse({ as: 'global' }, ({ request, route, set, responseValue }) => {
      // Unmatched paths share one label so that scanners cannot blow up the series count.
      const label = route && route !== '*' ? route : 'unmatched'
      const status = responseValue instanceof Response ? responseValue.status : typeof set.status === 'number' ? set.status : 200
      http.record(request.method, label, status, secondsSince(request))
    })
    .get(
      '/metrics',
      async ({ set }) => {
        set.headers['content-type'] = registry.contentType
        return registry.metrics()
      },
      { detail: { summary: 'Prometheus metrics', tags: ['operations'] } },
    )
  return { plugin, unmatched }
}
