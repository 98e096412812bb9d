// Which failures of Bun's SQL mean "PostgreSQL is unavailable", and the guard that turns them into 503s.
import { SQL } from 'bun'
import { withDeadline } from '../../shared/async.ts'
import { DependencyUnavailable } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'

/** Server-side SQLSTATE classes that mean "not now" rather than "wrong query". */
const TRANSIENT_SQLSTATE = /^(08|53|57P|58)/

/** True for an error that says PostgreSQL cannot be reached or is going away: the caller should try again later. */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof SQL.PostgresError)) return false
  if (error.code === 'ERR_POSTGRES_SERVER_ERROR') return TRANSIENT_SQLSTATE.test(error.errno ?? '')
  // Bun's own codes: a refused, closed, timed-out or failed connection (a bad query is the server's error above).
  return /CONNECTION|TIMEOUT|CLOSED|TLS|AUTHENTICATION|SOCKET/i.test(error.code)
}

/** The driver's words for why PostgreSQL is unavailable, for logs: message and code. */
export function reasonOf(error: unknown): string {
  if (error instanceof SQL.PostgresError) return `${error.message} (${error.errno ?? error.code})`
  return error instanceof Error ? error.message : String(error)
}

/** Runs a store operation; see createGuard. */
export type Guard = <T>(operation: () => Promise<T>) => Promise<T>

/**
 * A guard for a store's operations: an unavailable PostgreSQL, or an operation that has not settled within
 * `timeoutMs` (a hung server or network), rejects with DependencyUnavailable (503). The body says only that the
 * database is unavailable; the driver's reason goes to the log, once when PostgreSQL goes away and once when it
 * is back. Other errors (NotFound, Conflict, a bad query) pass unchanged.
 */
export function createGuard(options: { timeoutMs: number; log?: Logger }): Guard {
  let down = false
  const unavailable = (cause: unknown, reason: string) => {
    if (!down) options.log?.warn({ reason }, 'task store: PostgreSQL is unavailable; calls answer 503 until it is back')
    down = true
    return Object.assign(new DependencyUnavailable('The task database (PostgreSQL) is unavailable; try again later.'), { cause })
  }
  return async (operation) => {
    const work = operation()
    try {
      const value = await withDeadline(work, options.timeoutMs, () => unavailable(undefined, `no answer within ${options.timeoutMs} ms`))
      if (down) options.log?.info('task store: PostgreSQL is available again')
      down = false
      return value
    } catch (error) {
      if (error instanceof DependencyUnavailable) throw error
      if (!isUnavailable(error)) throw error
      throw unavailable(error, reasonOf(error))
    }
  }
}
