// The database role's own figures: tasks per state, task lifecycle events, and what removal did.
import { Counter, Gauge, type Registry } from '../../shared/prom.ts'
import type { ReportsSharedFigures } from './shared-figures.ts'
import { STATE_NAMES, type TaskStore } from './task-store.ts'

/** Counts `n` (default 1) task lifecycle events named `event`; n <= 0 counts nothing. */
export type CountEvent = (event: string, n?: number) => unknown

/** The gauges of tasks per state (on the one reporting instance) and the counter of lifecycle events, whose counter it returns. */
export function taskMetrics(registry: Registry, store: TaskStore, reports: ReportsSharedFigures): CountEvent {
  const reporting = () => reports().catch(() => true)
  new Gauge({
    name: 'pixmill_tasks_reporting',
    help: '1 on the one database instance that exports pixmill_tasks for the store they share, 0 on the others.',
    registers: [registry],
    async collect() {
      this.set((await reporting()) ? 1 : 0)
    },
  })
  new Gauge({
    name: 'pixmill_tasks',
    help: 'Tasks per state, in the whole store (exported by one database instance of those sharing it).',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      if (!(await reporting())) return this.reset()
      // A store that is down keeps the last figures: /metrics must still answer (it is how an outage is seen).
      const counts = await store.countByState().catch(() => undefined)
      // Label values in the style of every other label here (snake_case); the JSON of the API keeps its stateName.
      if (counts) for (const state of [0, 1, 2, 3] as const) this.set({ state: STATE_NAMES[state].replace('-', '_') }, counts[state])
    },
  })
  const events = new Counter({
    name: 'pixmill_task_events_total',
    help: 'Task lifecycle events: created, claimed, finished, failed, failed_for_good, lease_expired, released, retried.',
    labelNames: ['event'],
    registers: [registry],
  })
  return (event: string, n = 1) => n > 0 && events.inc({ event }, n)
}

/** What removal did: tasks removed by the sweep and by operators, and when the last sweep ended. */
export function removalMetrics(registry: Registry) {
  const removed = new Counter({
    name: 'pixmill_tasks_removed_total',
    help: 'Tasks removed with their images, by the retention sweep (by="sweep") or by an operator (by="operator").',
    labelNames: ['by'],
    registers: [registry],
  })
  const lastSweep = new Gauge({ name: 'pixmill_sweep_last_run_timestamp_seconds', help: 'When the last sweep ended (Unix time).', registers: [registry] })
  return {
    onRemoved: (count: number, by: 'sweep' | 'operator') => removed.inc({ by }, count),
    onSweep: (at: number) => lastSweep.set(at / 1000),
  }
}
