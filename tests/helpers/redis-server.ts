// A real redis-server per test file: free port, own temp folder, append-only file, kill -9 and restart.
import type { Subprocess } from 'bun'
import { freePort } from './processes.ts'
import { tempDir } from './temp.ts'

export interface RedisServerOptions {
  /** How often Redis fsyncs its append-only file. Default `always`: acknowledged means on disk. */
  readonly appendfsync?: 'always' | 'everysec'
  /** How long to wait for PING to answer. Default 5000 ms. */
  readonly startTimeoutMs?: number
}

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  /** The server's folder (append-only file, logs). */
  readonly dir: string
  /** Whether the process is running now. */
  readonly running: boolean
  /** SIGTERM (Redis flushes and exits cleanly), then removes its folder; call once, in afterAll. */
  stop(): Promise<void>
  /** SIGKILL: no shutdown, no flush; the folder is kept for `restart()`. */
  kill9(): Promise<void>
  /** SIGSTOP / SIGCONT: the socket stays open but nothing answers (a hung server). */
  pause(): void
  resume(): void
  /** Starts it again on the same port and folder (killing it first if it still runs); resolves once it answers PING. */
  restart(): Promise<void>
}

// Every server this process started, so a test that crashes before afterAll leaves none behind.
const live = new Set<Subprocess>()
process.on('exit', () => {
  for (const proc of live) proc.kill('SIGKILL')
})

/** Starts `redis-server` with `--appendonly yes` and no RDB snapshots; resolves once it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = freePort()
  const folder = tempDir('pixmill-redis-')
  const timeoutMs = options.startTimeoutMs ?? 5000
  const args = [
    '/usr/bin/redis-server',
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    folder.path,
    '--appendonly',
    'yes',
    '--appendfsync',
    options.appendfsync ?? 'always',
    '--save',
    '',
    '--daemonize',
    'no',
    '--logfile',
    'redis.log',
  ]
  let proc: Subprocess | undefined

  const spawn = async () => {
    proc = Bun.spawn(args, { cwd: folder.path, stdout: 'ignore', stderr: 'ignore' })
    live.add(proc)
    const started = proc
    void started.exited.then(() => live.delete(started))
    await waitForPong(port, timeoutMs, started, folder.path)
  }
  const kill = async (signal: 'SIGTERM' | 'SIGKILL') => {
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGCONT') // a paused server would not act on SIGTERM
    proc.kill(signal)
    await proc.exited
  }

  await spawn()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir: folder.path,
    get running() {
      return proc !== undefined && proc.exitCode === null && proc.signalCode === null
    },
    async stop() {
      await kill('SIGTERM')
      folder.remove()
    },
    kill9: () => kill('SIGKILL'),
    pause: () => proc?.kill('SIGSTOP'),
    resume: () => proc?.kill('SIGCONT'),
    async restart() {
      await kill('SIGKILL')
      await spawn()
    },
  }
}

/** Sends a raw PING until `+PONG` comes back (a raw socket, so the check does not depend on the client under test). */
async function waitForPong(port: number, timeoutMs: number, proc: Subprocess, dir: string): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (performance.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}; see ${dir}/redis.log`)
    if (await pingOnce(port)) return
    await Bun.sleep(20)
  }
  proc.kill('SIGKILL')
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms; see ${dir}/redis.log`)
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false
    const done = (ok: boolean, socket?: { end(): void }) => {
      if (settled) return
      settled = true
      socket?.end()
      resolve(ok)
    }
    // While Redis loads its append-only file it answers -LOADING, which is not ready yet.
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open: (socket) => void socket.write('PING\r\n'),
        data: (socket, data) => done(Buffer.from(data).toString().startsWith('+PONG'), socket),
        close: () => done(false),
        error: () => done(false),
        connectError: () => done(false),
      },
    }).catch(() => done(false))
    setTimeout(() => done(false), 500).unref()
  })
}
