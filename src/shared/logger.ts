// Structured JSON logs (pino), one child logger per role.
import pino from 'pino'
import { currentRequestId } from './request-context.ts'

export type Logger = pino.Logger

/** The process-wide root logger; `PIXMILL_LOG_LEVEL` sets its level (default `info`). */
const root = pino({
  level: process.env.PIXMILL_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  // Every line logged while serving a request (or working on a task) names it, so one upload can be followed across roles.
  mixin() {
    const requestId = currentRequestId()
    return requestId === undefined ? {} : { requestId }
  },
})

/** A logger whose every line names the role. */
export function createLogger(role: string): Logger {
  return root.child({ role })
}

/** A logger that drops everything, for tests that do not read logs. */
export const silentLogger: Logger = pino({ level: 'silent' })
