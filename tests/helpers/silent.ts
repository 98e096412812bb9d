// Dependencies for apps under test that nobody reads: a silent logger and a fresh metrics registry.
import { createMetricsRegistry } from '../../src/plugins/metrics.ts'
import { silentLogger } from '../../src/shared/logger.ts'

export function quietDeps(role: string) {
  return { log: silentLogger, registry: createMetricsRegistry(role) }
}
