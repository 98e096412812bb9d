// GET /metrics in Prometheus text format: requests and latencies per route, plus each role's own figures.
import { Elysia } from 'elysia'
import { errorStatus } from './errors.ts'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

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

/** Counts requests and observes their duration per method, route and status. */
export function metricsPlugin(registry: Registry) {
  const requests = new Counter({
    name: 'pixmill_http_requests_total',
    help: 'HTTP requests answered, per method, route and status.',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'pixmill_http_request_duration_seconds',
    help: 'Time from request to response, per method and route.',
    labelNames: ['method', 'route'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  })
  const startedAt = new WeakMap<Request, number>()
  return new Elysia({ name: `pixmill.metrics` })
    .onRequest(({ request }) => {
      startedAt.set(request, performance.now())
    })
    .onAfterResponse({ as: 'global' }, ({ request, route, set, response }) => {
      const begun = startedAt.get(request)
      // Unmatched paths share one label so that scanners cannot blow up the series count.
      const label = route && route !== '*' ? route : 'unmatched'
      const status = errorStatus.get(request) ?? (response instanceof Response ? response.status : typeof set.status === 'number' ? set.status : 200)
      requests.inc({ method: request.method, route: label, status: String(status) })
      if (begun !== undefined) duration.observe({ method: request.method, route: label }, (performance.now() - begun) / 1000)
    })
    .get(
      '/metrics',
      async ({ set }) => {
        set.headers['content-type'] = registry.contentType
        return registry.metrics()
      },
      { detail: { summary: 'Prometheus metrics', tags: ['operations'] } },
    )
}
