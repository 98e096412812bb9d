// Requests and latencies counted in plain numbers per request; prom-client formats them only when /metrics is read.
import type { Metric, Registry } from '../shared/prom.ts'

/** Upper bounds of the latency buckets, in seconds. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10] as const

interface RequestCount {
  readonly labels: { readonly method: string; readonly route: string; readonly status: string }
  count: number
}

/** One method and route: its latency histogram and its request counts per status. */
interface RouteSeries {
  /** The same object at every scrape: prom-client caches the formatted shared labels per object. */
  readonly labels: { readonly method: string; readonly route: string }
  /** Requests per bucket, not cumulative; the last slot holds those above the largest bound. */
  readonly buckets: Float64Array
  sum: number
  count: number
  readonly byStatus: Map<number, RequestCount>
}

/** A value as prom-client's Registry formats it (`sharedLabels` come after the default labels, as its Histogram does). */
interface ScrapedValue {
  readonly metricName?: string
  readonly labels: Record<string, string | number>
  readonly sharedLabels?: Record<string, string>
  readonly value: number
}

/**
 * `pixmill_http_requests_total` and `pixmill_http_request_duration_seconds`, with the names, labels and text of
 * prom-client's Counter and Histogram. Those hash the label set on every `inc`/`observe` (about a third of a small
 * read's CPU); here a request costs two Map lookups and a few additions, and the values go to prom-client's Registry
 * as metric objects it formats like its own.
 */
export class HttpMetrics {
  private readonly routes = new Map<string, Map<string, RouteSeries>>()
  /** In the order first seen, as prom-client lists its series. */
  private series: RouteSeries[] = []
  private counts: RequestCount[] = []

  /** Counts one answered request; `seconds` from the request coming in to the answer, when known. */
  record(method: string, route: string, status: number, seconds: number | undefined): void {
    let byMethod = this.routes.get(route)
    if (byMethod === undefined) {
      byMethod = new Map()
      this.routes.set(route, byMethod)
    }
    let series = byMethod.get(method)
    if (series === undefined) {
      series = { labels: { method, route }, buckets: new Float64Array(BUCKETS.length + 1), sum: 0, count: 0, byStatus: new Map() }
      byMethod.set(method, series)
      this.series.push(series)
    }
    let counted = series.byStatus.get(status)
    if (counted === undefined) {
      counted = { labels: { method, route, status: String(status) }, count: 0 }
      series.byStatus.set(status, counted)
      this.counts.push(counted)
    }
    counted.count++
    if (seconds === undefined) return
    let i = 0
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++
    series.buckets[i]!++
    series.sum += seconds
    series.count++
  }

  reset(): void {
    this.routes.clear()
    this.series = []
    this.counts = []
  }

  /** Registers both metrics in `registry`; their values are read from here at each scrape. */
  register(registry: Registry): void {
    const requests = {
      name: 'pixmill_http_requests_total',
      help: 'HTTP requests answered, per method, route and status.',
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({ ...requests, values: this.counts.map((c): ScrapedValue => ({ labels: { ...c.labels }, value: c.count })) }),
      reset: () => this.reset(),
    }
    const name = 'pixmill_http_request_duration_seconds'
    const duration = {
      name,
      help: 'Time from request to response, per method and route.',
      type: 'histogram',
      aggregator: 'sum',
      // What the Registry formats the text from (the shape of Histogram.getForPromString).
      getForPromString: async () => ({ ...duration, values: this.histogramValues(name) }),
      // What getMetricsAsJSON and the cluster aggregator read: the shared labels merged in (as Histogram.get does).
      get: async () => ({
        ...duration,
        values: this.histogramValues(name).map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })),
      }),
      reset: () => this.reset(),
    }
    // The Registry takes any object with a name, help, type, get() and reset(); its typings name only prom-client's classes.
    registry.registerMetric(requests as unknown as Metric)
    registry.registerMetric(duration as unknown as Metric)
  }

  private histogramValues(name: string): ScrapedValue[] {
    const values: ScrapedValue[] = []
    for (const s of this.series) {
      let cumulative = 0
      BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i]!
        values.push({ metricName: `${name}_bucket`, labels: { le }, sharedLabels: s.labels, value: cumulative })
      })
      values.push(
        { metricName: `${name}_bucket`, labels: { le: '+Inf' }, sharedLabels: s.labels, value: s.count },
        { metricName: `${name}_sum`, labels: {}, sharedLabels: s.labels, value: s.sum },
        { metricName: `${name}_count`, labels: {}, sharedLabels: s.labels, value: s.count },
      )
    }
    return values
  }
}
