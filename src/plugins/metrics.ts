// GET /metrics in Prometheus text format: requests and latencies per route, plus each role's own figures.

import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Elysia } from 'elysia'
import { Counter, Gauge, Registry } from '../shared/prom.ts'
import { PACKAGE_VERSION } from '../shared/version.ts'
import { accessMacro } from './access.ts'
import { HttpMetrics } from './http-metrics.ts'

/** The version in package.json and the commit of the checkout (PIXMILL_COMMIT, else git's HEAD, else `unknown`). */
const BUILD = (() => {
  const root = new URL('../../', import.meta.url)
  const version = PACKAGE_VERSION
  let commit = process.env.PIXMILL_COMMIT?.trim() || ''
  if (!commit) {
    const git = Bun.spawnSync(['git', 'rev-parse', '--short=12', 'HEAD'], { cwd: fileURLToPath(root), stdout: 'pipe', stderr: 'ignore' })
    commit = git.success ? git.stdout.toString().trim() : 'unknown'
  }
  return { version, bun: Bun.version, commit }
})()

/** When this process started, in seconds since the epoch. */
const STARTED_AT_SECONDS = Date.now() / 1000 - process.uptime()

/** How late the event loop ran a timer lately, in seconds (a busy or blocked loop runs its timers late). */
let eventLoopLagSeconds = 0
{
  const every = 500
  let expected = performance.now() + every
  setInterval(() => {
    const now = performance.now()
    eventLoopLagSeconds = Math.max(0, now - expected) / 1000
    expected = now + every
  }, every).unref()
}

/** The event loop's lag, for /livez. */
export const eventLoopLag = () => eventLoopLagSeconds

/**
 * One registry per role, so several roles in one process keep their figures apart. The process figures carry the names
 * stock dashboards use (prom-client's default set reads Node's event-loop monitor, which Bun does not fill in, so they
 * are read here from what Bun reports); `pixmill_build_info` says what runs.
 */
export function createMetricsRegistry(role: string): Registry {
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read())
      },
    })
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        // A counter read from the process: set to its current total.
        this.reset()
        this.inc(read())
      },
    })
  gauge('process_resident_memory_bytes', 'Resident memory size in bytes.', () => process.memoryUsage.rss())
  counter('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => process.cpuUsage().user / 1e6)
  counter('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => process.cpuUsage().system / 1e6)
  counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => {
    const { user, system } = process.cpuUsage()
    return (user + system) / 1e6
  })
  gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => STARTED_AT_SECONDS)
  gauge('process_open_fds', 'Number of open file descriptors.', () => {
    try {
      return readdirSync('/proc/self/fd').length
    } catch {
      return 0
    }
  })
  gauge('nodejs_heap_size_total_bytes', 'Process heap size from the JavaScript engine, in bytes.', () => process.memoryUsage().heapTotal)
  gauge('nodejs_heap_size_used_bytes', 'Process heap size used from the JavaScript engine, in bytes.', () => process.memoryUsage().heapUsed)
  gauge('nodejs_external_memory_bytes', 'Memory of the engine outside its heap (buffers), in bytes.', () => process.memoryUsage().external)
  gauge('nodejs_eventloop_lag_seconds', 'How late the event loop ran a timer lately, in seconds.', () => eventLoopLagSeconds)
  new Gauge({
    name: 'pixmill_build_info',
    help: 'What runs: the version of pixmill, of Bun, and the commit; always 1.',
    labelNames: ['version', 'bun', 'commit'],
    registers: [registry],
  }).set(BUILD, 1)
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
    .use(accessMacro())
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
      // Open, for Prometheus: figures, no task of anyone's.
      { access: 'public', detail: { summary: 'Prometheus metrics', tags: ['operations'] } },
    )
  return { plugin, unmatched }
}
