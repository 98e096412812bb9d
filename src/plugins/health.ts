// GET /health, /readyz and /livez: whether the role can serve, and whether the process is alive at all.
import { Elysia, t } from 'elysia'
import { accessMacro } from './access.ts'
import { eventLoopLag } from './metrics.ts'

export interface HealthReport {
  readonly ok: boolean
  /** Why it cannot serve (or what is close to stopping it), in words an operator acts on. */
  readonly reasons?: readonly string[]
  readonly [detail: string]: unknown
}

export type HealthCheck = () => HealthReport | Promise<HealthReport>

async function run(check: HealthCheck): Promise<HealthReport> {
  try {
    return await check()
  } catch (error) {
    return { ok: false, reasons: [(error as Error).message] }
  }
}

const Report = t.Object({ role: t.String(), ok: t.Boolean() }, { additionalProperties: true })

/**
 * `/health` (200 or 503, as it always was), `/readyz` (Kubernetes' readiness: 503 while the role cannot serve, with the
 * reasons: its stores, its peers, `ready`'s own, such as a disk filling up) and `/livez` (liveness: 200 whenever the
 * process answers, whatever its dependencies do, so that an outage elsewhere never restarts it; it names the event
 * loop's lag). The checks run on every call; they must be cheap.
 */
export function healthPlugin(role: string, health: HealthCheck, ready: HealthCheck = health) {
  // Probes are open: orchestrators and peers ask them without the token.
  return new Elysia({ name: `pixmill.health.${role}` })
    .use(accessMacro())
    .get(
      '/health',
      async ({ set }) => {
        const report = await run(health)
        set.status = report.ok ? 200 : 503
        return { role, ...report }
      },
      { access: 'public', detail: { summary: 'Whether the role can serve (200) or not (503)', tags: ['operations'] }, response: { 200: Report, 503: Report } },
    )
    .get(
      '/readyz',
      async ({ set }) => {
        const report = await run(ready)
        set.status = report.ok ? 200 : 503
        return { role, ...report }
      },
      {
        access: 'public',
        detail: { summary: 'Readiness: 200 while the role can serve, else 503 with the reasons (stores, peers, disk)', tags: ['operations'] },
        response: { 200: Report, 503: Report },
      },
    )
    .get('/livez', () => ({ role, ok: true, eventLoopLagMs: Math.round(eventLoopLag() * 1000) }), {
      access: 'public',
      detail: { summary: 'Liveness: 200 while the process answers, whatever its dependencies do', tags: ['operations'] },
      response: { 200: Report },
    })
}
