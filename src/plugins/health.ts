// GET /health: 200 while the role can serve, 503 while it cannot.
import { Elysia, t } from 'elysia'

export interface HealthReport {
  readonly ok: boolean
  readonly [detail: string]: unknown
}

/** `check` runs on every call; it must be cheap and must not throw (a throw counts as not ok). */
export function healthPlugin(role: string, check: () => HealthReport | Promise<HealthReport>) {
  return new Elysia({ name: `pixmill.health.${role}` }).get(
    '/health',
    async ({ set }) => {
      let report: HealthReport
      try {
        report = await check()
      } catch (error) {
        report = { ok: false, error: (error as Error).message }
      }
      set.status = report.ok ? 200 : 503
      return { role, ...report }
    },
    {
      detail: { summary: 'Whether the role can serve (200) or not (503)', tags: ['operations'] },
      response: { 200: t.Object({ role: t.String(), ok: t.Boolean() }, { additionalProperties: true }), 503: t.Object({ role: t.String(), ok: t.Boolean() }, { additionalProperties: true }) },
    },
  )
}
