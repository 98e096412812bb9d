// Running a role as a process: start it, stop it on SIGTERM/SIGINT, and exit with a status that says how it went.
import { UsageError } from '../shared/args.ts'
import { ConfigError } from '../shared/config.ts'
import { restartWithAllocatorSettings } from './allocator.ts'
import type { RunningRole } from './serve-role.ts'

/**
 * The body of every entry file: start the role, stop it on SIGTERM/SIGINT and exit 0; print the usage line and
 * exit 2 on a bad command line, name the variable and exit 2 on a bad setting, exit 1 when start-up fails. First the
 * process restarts in place with the allocators' settings for `role` when its environment lacks them (allocator.ts).
 */
export async function runMain(role: string, start: () => Promise<RunningRole | RunningRole[]>): Promise<void> {
  restartWithAllocatorSettings([role])
  let roles: RunningRole[]
  try {
    const started = await start()
    roles = Array.isArray(started) ? started : [started]
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`Error: ${error.message}\n${error.usage}`)
      process.exit(2)
    }
    if (error instanceof ConfigError) {
      console.error(`Error: ${error.message}`)
      process.exit(2)
    }
    console.error(`Error: ${(error as Error).message}`)
    process.exit(1)
  }
  let signalled = false
  const shutdown = async (signal: string) => {
    if (signalled) return
    signalled = true
    console.error(`${signal}: stopping ${roles.map((r) => r.role).join(', ')}`)
    await Promise.allSettled(roles.map((r) => r.stop()))
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}
