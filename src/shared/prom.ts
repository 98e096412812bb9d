// prom-client's metric classes, loaded from their own files. Its index also loads the default metrics (which no role
// uses: Bun does not fill in Node's event-loop monitor they read) and the Pushgateway with node:https, which cost
// every role about 7.5 MB of resident memory at rest for nothing (measured: Elysia alone 29.8 MB, with prom-client's
// index 38.9 MB, with these files 31.1 MB). The types are prom-client's own.
import type * as PromClient from 'prom-client'

export type { Metric } from 'prom-client'
export type Registry = PromClient.Registry
export type Counter<T extends string = string> = PromClient.Counter<T>
export type Gauge<T extends string = string> = PromClient.Gauge<T>
export type Histogram<T extends string = string> = PromClient.Histogram<T>

export const Registry: typeof PromClient.Registry = require('prom-client/lib/registry')
export const Counter: typeof PromClient.Counter = require('prom-client/lib/counter')
export const Gauge: typeof PromClient.Gauge = require('prom-client/lib/gauge')
export const Histogram: typeof PromClient.Histogram = require('prom-client/lib/histogram')
