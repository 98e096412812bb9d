// Structured logs (pino), one child logger per role: JSON lines, or readable lines when the output is a terminal.
import pino from 'pino'
import type PinoPretty from 'pino-pretty'
import { currentRequestId } from './request-context.ts'
import { currentTraceIds } from './trace-context.ts'

export type Logger = pino.Logger

/** The levels PIXMILL_LOG_LEVEL takes (config.ts checks it and names the variable when it is anything else). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

const given = process.env.PIXMILL_LOG_LEVEL?.trim()
// A bad value is reported by the settings check at start, by name; until then, and in tests, `info`.
const level = (LOG_LEVELS as readonly string[]).includes(given ?? '') ? given! : 'info'

/**
 * The process-wide root logger. On a terminal, lines a person reads (pino-pretty); anywhere else (files, pipes, a
 * launcher's or a container's log collector) one JSON object per line. PIXMILL_LOG_FORMAT=json|pretty decides instead.
 */
const readable = process.env.PIXMILL_LOG_FORMAT === 'pretty' || (process.env.PIXMILL_LOG_FORMAT !== 'json' && process.stdout.isTTY === true)
const root = pino(
  {
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Every line logged while serving a request (or working on a task) names it, so one upload can be followed across roles.
    // With tracing on, it names the trace and span too (`trace_id`, `span_id`), to go from a log line to its trace.
    mixin() {
      const requestId = currentRequestId()
      const ids = currentTraceIds()
      if (ids === undefined) return requestId === undefined ? {} : { requestId }
      return requestId === undefined ? ids : { requestId, ...ids }
    },
  },
  // Loaded only for a terminal: a role logging JSON does not carry it (about 2 MB of resident memory).
  readable
    ? (require('pino-pretty') as typeof PinoPretty)({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', messageFormat: '{role}: {msg}' })
    : undefined,
)

/** A logger whose every line names the role. */
export function createLogger(role: string): Logger {
  return root.child({ role })
}

/** A logger that drops everything, for tests that do not read logs. */
export const silentLogger: Logger = pino({ level: 'silent' })
