// A throw-away PostgreSQL server for tests: initdb once per file, a database per test, kill -9 and restart.

import { chownSync, closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SQL, type Subprocess } from 'bun'
import { freePort } from './processes.ts'

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/pixmill`, a database made at start. */
  readonly url: string
  readonly port: number
  /** Where its log goes. */
  readonly logFile: string
  /** Makes a database and returns its URL. */
  createDatabase(name: string): Promise<string>
  /**
   * Empties the `pixmill` database (its public schema dropped and made again) and returns its URL: a fresh
   * database for one test in about 1 ms, where CREATE DATABASE takes 100-200 ms with fsync on. Tests that use it
   * must close their stores before the next one starts.
   */
  emptyDatabase(): Promise<string>
  /** Fast shutdown (the clients are disconnected, everything is checkpointed); the data stays for restart(). */
  stop(): Promise<void>
  /** SIGKILL to the postmaster and every process of it at once: a crash, recovered from the WAL by restart(). */
  kill9(): Promise<void>
  /** SIGSTOP to the postmaster and every process of it: a hung server that still holds its connections open. */
  freeze(): void
  /** SIGCONT after freeze(). */
  thaw(): void
  /** Starts it again on the same port and data (stopping it first if it runs). */
  restart(): Promise<void>
  /** Stops it and removes its folder. Idempotent; call it in afterAll. */
  destroy(): Promise<void>
}

/** The newest PostgreSQL server binaries installed, if any. */
function binDir(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] && join(root, versions[0], 'bin')
}

/** True when PostgreSQL's server binaries are installed (`.ci/run` installs them). */
export function postgresInstalled(): boolean {
  return binDir() !== undefined
}

/** PostgreSQL refuses to run as root: as root, commands run as the `postgres` user. */
function asPostgres(command: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...command] : command
}

function run(command: string[]): void {
  const result = Bun.spawnSync(asPostgres(command), { stdout: 'pipe', stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(`${command.join(' ')} failed (${result.exitCode}): ${result.stderr.toString()}${result.stdout.toString()}`)
}

/** Processes whose parent is `pid`, read from /proc before a kill (once the parent is gone they are re-parented). */
function childrenOf(pid: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // The command name is in parentheses and may hold spaces: the fields after its closing one are state, ppid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) children.push(Number(entry))
    } catch {
      // it exited while we looked
    }
  }
  return children
}

/** True once `pid` has exited (a zombie included). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/** Servers of this process still running, stopped at exit should a test file end without its afterAll. */
const running = new Set<() => void>()
process.on('exit', () => {
  for (const stopNow of running) stopNow()
})

/**
 * initdb into a fresh temporary folder and starts the server on a free port, listening on 127.0.0.1 and on a
 * socket in that folder (as the `postgres` user when running as root). `fsync` stays on: the durability tests
 * need the real thing.
 */
export async function startPostgresServer(): Promise<PostgresServer> {
  const bin = binDir()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)')
  // mkdtemp makes the folder 0700 for root; the server user must own it. /tmp itself is world-executable.
  const dir = mkdtempSync(join(tmpdir(), 'pixmill-pg-'))
  if (process.getuid?.() === 0) {
    const id = (flag: string) => Number(Bun.spawnSync(['id', flag, 'postgres']).stdout.toString())
    chownSync(dir, id('-u'), id('-g'))
  }
  const data = join(dir, 'data')
  const logFile = join(dir, 'postgres.log')
  run([join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'])
  const port = freePort()
  const base = `postgres://postgres@127.0.0.1:${port}`
  let proc: Subprocess<'pipe', number, number> | undefined
  let postmaster = 0

  async function start(): Promise<void> {
    const previous = postmaster
    const log = openSync(logFile, 'a')
    // The postmaster runs under a small shell of ours rather than daemonized by pg_ctl: (1) we reap it, because a
    // zombie's pid passes the lock file's liveness check and the restart after kill9() would refuse to start;
    // (2) the shell reads our pipe and shuts the server down when it closes, so a test run that dies leaves no
    // server behind; then, unless we said "keep" (a stop before a restart), it removes the folder too.
    const args = [
      join(bin!, 'postgres'),
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=on',
      '-c',
      'max_connections=200',
    ]
    proc = Bun.spawn(
      asPostgres(['sh', '-c', `"$@" & pg=$!; read keep; kill -INT $pg 2>/dev/null; wait $pg; [ "$keep" = keep ] || rm -rf '${dir}'`, 'sh', ...args]),
      {
        stdout: log,
        stderr: log,
        stdin: 'pipe',
      },
    )
    closeSync(log)
    const deadline = performance.now() + 30_000
    for (;;) {
      // Line 8 of postmaster.pid says "ready" once connections are accepted (what `pg_ctl start -w` waits for);
      // after a kill -9 the file left behind says so too, with the dead postmaster's pid.
      const lines = existsSync(join(data, 'postmaster.pid')) ? readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n') : []
      if (lines[7]?.trim() === 'ready' && Number(lines[0]) !== previous) {
        postmaster = Number(lines[0])
        break
      }
      if (proc.exitCode !== null || performance.now() > deadline) {
        const tail = readFileSync(logFile, 'utf8').slice(-2000)
        // Without "keep", the shell stops whatever started and removes the folder.
        proc.stdin.end()
        throw new Error(`PostgreSQL did not start (exit ${proc.exitCode}): ${tail}`)
      }
      await Bun.sleep(20)
    }
    running.add(stopNow)
  }

  function signalAll(signal: NodeJS.Signals): void {
    const send = (pid: number) => {
      try {
        process.kill(pid, signal)
      } catch {
        // already gone
      }
    }
    // The postmaster first, its children listed after: a backend it forks in between would otherwise escape a SIGSTOP
    // and answer while "the server" is frozen.
    send(postmaster)
    for (const pid of childrenOf(postmaster)) send(pid)
  }

  async function shutdown(signal: 'SIGINT' | 'SIGKILL'): Promise<void> {
    const current = proc
    if (!current || current.exitCode !== null) return
    if (signal === 'SIGKILL') {
      signalAll('SIGKILL')
    } else {
      signalAll('SIGCONT') // a frozen server cannot act on its shutdown signal
      try {
        process.kill(postmaster, 'SIGINT') // PostgreSQL's "fast" shutdown
      } catch {
        // it died on its own; its parent still has to be waited for
      }
    }
    // Ends the shell's `read`: it waits for the postmaster (reaping it) and exits, leaving the data for restart().
    current.stdin.write('keep\n')
    current.stdin.end()
    await current.exited
    running.delete(stopNow)
  }

  /** Synchronous, for the exit hook: immediate shutdown, then the folder goes. */
  function stopNow(): void {
    signalAll('SIGCONT')
    try {
      process.kill(postmaster, 'SIGQUIT') // immediate shutdown
    } catch {
      // already gone
    }
    // Until our shell reads its pipe the postmaster stays a zombie once it has exited: that counts as gone.
    for (let i = 0; i < 250 && !gone(postmaster); i++) Bun.sleepSync(20)
    rmSync(dir, { recursive: true, force: true })
  }

  await start()
  let destroyed = false
  const server: PostgresServer = {
    url: `${base}/pixmill`,
    port,
    logFile,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain database name: ${name}`)
      const admin = new SQL(`${base}/postgres`, { max: 1 })
      try {
        await admin.unsafe(`CREATE DATABASE ${name}`)
      } finally {
        await admin.close()
      }
      return `${base}/${name}`
    },
    async emptyDatabase() {
      const db = new SQL(`${base}/pixmill`, { max: 1 })
      try {
        await db.unsafe('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public')
      } finally {
        await db.close()
      }
      return `${base}/pixmill`
    },
    stop: () => shutdown('SIGINT'),
    freeze: () => signalAll('SIGSTOP'),
    thaw: () => signalAll('SIGCONT'),
    kill9: () => shutdown('SIGKILL'),
    async restart() {
      await shutdown('SIGINT')
      await start()
    },
    async destroy() {
      if (destroyed) return
      destroyed = true
      await shutdown('SIGINT')
      rmSync(dir, { recursive: true, force: true })
    },
  }
  await server.createDatabase('pixmill')
  return server
}
