// The request counters kept in plain numbers: their /metrics text must be what prom-client's own Counter and Histogram give.
import { describe, expect, test } from 'bun:test'
import { Counter, Histogram, Registry } from 'prom-client'
import { HttpMetrics } from '../../src/plugins/http-metrics.ts'

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

/** The same requests, counted by HttpMetrics in one registry and by prom-client's classes (as before) in another. */
function twoRegistries(requests: readonly (readonly [string, string, number, number | undefined])[]) {
  const ours = new Registry()
  ours.setDefaultLabels({ role: 'kv' })
  const metrics = new HttpMetrics()
  metrics.register(ours)
  const theirs = new Registry()
  theirs.setDefaultLabels({ role: 'kv' })
  const counter = new Counter({
    name: 'pixmill_http_requests_total',
    help: 'HTTP requests answered, per method, route and status.',
    labelNames: ['method', 'route', 'status'],
    registers: [theirs],
  })
  const histogram = new Histogram({
    name: 'pixmill_http_request_duration_seconds',
    help: 'Time from request to response, per method and route.',
    labelNames: ['method', 'route'],
    buckets: BUCKETS,
    registers: [theirs],
  })
  for (const [method, route, status, seconds] of requests) {
    metrics.record(method, route, status, seconds)
    counter.inc({ method, route, status: String(status) })
    if (seconds !== undefined) histogram.observe({ method, route }, seconds)
  }
  return { ours, theirs, metrics }
}

describe('http metrics', () => {
  const requests = [
    ['GET', '/get', 200, 0.0004],
    ['GET', '/get', 404, 0.0005],
    ['POST', '/set', 200, 0.003],
    ['GET', '/get', 200, 0.07],
    ['GET', 'unmatched', 404, 12],
    ['PUT', '/get', 405, 0.001],
    ['GET', '/list', 200, 10],
    ['GET', '/get', 400, undefined],
  ] as const

  test('give the same Prometheus text as prom-client’s Counter and Histogram, names, labels, types and order', async () => {
    const { ours, theirs } = twoRegistries(requests)
    const text = await ours.metrics()
    expect(text).toBe(await theirs.metrics())
    expect(text).toContain('pixmill_http_requests_total{method="GET",route="/get",status="200",role="kv"} 2')
    expect(text).toContain('pixmill_http_request_duration_seconds_bucket{le="0.0005",role="kv",method="GET",route="/get"} 2')
    expect(text).toContain('pixmill_http_request_duration_seconds_count{role="kv",method="GET",route="unmatched"} 1')
  })

  test('give the same JSON as prom-client’s classes, and start again from nothing on resetMetrics()', async () => {
    const { ours, theirs } = twoRegistries(requests)
    const strip = (metrics: Awaited<ReturnType<Registry['getMetricsAsJSON']>>) =>
      JSON.parse(JSON.stringify(metrics, (key, value) => (key === 'exemplar' ? undefined : value)))
    expect(strip(await ours.getMetricsAsJSON())).toEqual(strip(await theirs.getMetricsAsJSON()))
    ours.resetMetrics()
    theirs.resetMetrics()
    expect(await ours.metrics()).toBe(await theirs.metrics())
  })
})
