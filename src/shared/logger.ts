// Structured JSON logs (pino), one child logger per role.
import pino from 'pino'

export type Logger = pino.Logger

/** The process-wide root logger; `PIXMILL_LOG_LEVEL` sets its level (default `info`). */
const root = pino({
  level: process.env.PIXMILL_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
})

/** A logger whose every line names the role. */
export function createLogger(role: string): Logger {
  return root.child({ role })
}

/** A logger that drops everything, for tests that do not read logs. */
export const silentLogger: Logger = pino({ level: 'silent' })
