// The processes a run starts: the pixmill roles, the bare baseline servers and the raw image work, and their stopping.

import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import type { Subprocess } from 'bun'
import { allocatorEnv } from '../../src/runtime/allocator.ts'
import { freePort, REPO_ROOT, type RoleProcess, spawnCommand, spawnRole, waitHealthy } from '../../tests/helpers/processes.ts'

export type RoleName = 'kv' | 'database' | 'storage' | 'master'
export type Addresses = Readonly<Record<RoleName, string>>
/**
 * How the roles run: each in its own process, all four and the worker in one (as `bun run start` runs them), or
 * somebody else's.
 */
export type Layout = 'separate' | 'one-process' | 'given'

export interface BenchSystem {
  readonly layout: Layout
  readonly addresses: Addresses
  /**
   * The processes this run started, by what runs in them (a role, or `roles` for all four in one), so that their RSS
   * and CPU can be read; undefined for a system somebody else runs.
   */
  readonly pids?: Readonly<Record<string, number>>
  /**
   * A worker of `threads` loops for this system: `bun run src/worker.ts <kv> <threads>`, or in the one-process layout
   * the system started again with the worker among its roles.
   */
  startWorker(threads: number): Promise<StartedWorker>
  stop(): Promise<void>
}

export interface Stoppable {
  stop(): Promise<void>
}

/** A worker this run started. */
export interface StartedWorker extends Stoppable {
  /** Every process of the system and the worker, by what runs in it: the CPU they spend is the system's. */
  readonly processes: Readonly<Record<string, number>>
}

/** Room for the memory figure's 200 MiB upload, which the default limit (50 MiB) refuses. */
export const BENCH_MAX_UPLOAD_BYTES = 256 * 1024 * 1024

/**
 * Environment of every process started: the bench's upload limit and logs only when something is wrong. Each role gets
 * the allocators' settings of its own role (spawnRole), as the launcher gives them.
 */
const ENV = { PIXMILL_MAX_UPLOAD_BYTES: String(BENCH_MAX_UPLOAD_BYTES), PIXMILL_LOG_LEVEL: 'warn' }

/** The bench's own scripts (the raw image work, the bare servers) run with the worker's allocator settings. */
const SCRIPT_ENV = { ...allocatorEnv(['worker']), ...ENV }

/** SIGTERM, then kill -9 if it has not exited within `graceMs`. */
async function stopRole(role: RoleProcess, graceMs = 5000): Promise<void> {
  const exited = await Promise.race([role.terminate(), Bun.sleep(graceMs).then(() => undefined)])
  if (exited === undefined) await role.kill9()
}

/** A worker has up to 20 s to finish its tasks when it stops (close()), more when a task is slow. */
const WORKER_STOP_MS = 65_000

function workerStarter(kv: string, dataDir: string, pids: Readonly<Record<string, number>> = {}) {
  return async (threads: number): Promise<StartedWorker> => {
    const worker = await spawnRole('worker', [kv, String(threads)], { dataDir, env: ENV })
    return { processes: { ...pids, worker: worker.proc.pid }, stop: () => stopRole(worker, WORKER_STOP_MS) }
  }
}

/** kv, database, storage and master as separate processes on free ports, with their data in `dataDir`. */
export async function startSystem(dataDir: string): Promise<BenchSystem> {
  const at = () => `127.0.0.1:${freePort()}`
  const addresses = { kv: at(), database: at(), storage: at(), master: at() }
  const roles: RoleProcess[] = []
  const stop = async () => {
    await Promise.allSettled(
      roles
        .splice(0)
        .reverse()
        .map((role) => stopRole(role)),
    )
  }
  try {
    roles.push(await spawnRole('kv', [addresses.kv], { dataDir, healthAt: addresses.kv, env: ENV }))
    for (const role of ['database', 'storage', 'master'] as const) {
      roles.push(await spawnRole(role, [addresses[role], addresses.kv], { dataDir, healthAt: addresses[role], env: ENV }))
    }
  } catch (error) {
    await stop()
    throw error
  }
  const pids = Object.fromEntries(roles.map((role) => [role.role, role.proc.pid]))
  return { layout: 'separate', addresses, pids, startWorker: workerStarter(addresses.kv, dataDir, pids), stop }
}

/** Whether something listens on 127.0.0.1:`port`. */
function portTaken(port: number): boolean {
  try {
    Bun.serve({ port, hostname: '127.0.0.1', fetch: () => new Response() }).stop(true)
    return false
  } catch {
    return true
  }
}

/**
 * kv, database, storage and master in one process, as `bun run start` runs them (so they call each other in-process),
 * through the launcher with a port offset under which their four default ports are free. `bun run start` runs the
 * worker in that process too, and so does startWorker: it starts the process again with the worker among its roles
 * (its calls to master and storage then go in-process as well), over the same ports and data folder.
 */
export async function startOneProcessSystem(dataDir: string): Promise<BenchSystem> {
  const roles = ['kv', 'database', 'storage', 'master'] as const
  let offset = 0
  for (let tries = 0; ; tries++) {
    // Ports 20000-29003: below the kernel's ephemeral range, where no outgoing connection takes them meanwhile.
    offset = 17_000 + Math.floor(Math.random() * 9_000)
    if (!roles.some((_, i) => portTaken(3000 + offset + i))) break
    if (tries === 20) throw new Error('no free ports for the one-process system')
  }
  const addresses = Object.fromEntries(roles.map((role, i) => [role, `127.0.0.1:${3000 + offset + i}`])) as Record<RoleName, string>
  const launch = async (workerThreads?: number): Promise<RoleProcess> => {
    const running = workerThreads === undefined ? [...roles] : [...roles, 'worker']
    const threads = workerThreads === undefined ? [] : ['--threads', String(workerThreads)]
    const argv = [
      'bun',
      'run',
      'scripts/launch.ts',
      '--roles',
      running.join(','),
      ...threads,
      '--port-offset',
      String(offset),
      '--host',
      '127.0.0.1',
      '--data',
      dataDir,
    ]
    const launched = spawnCommand('roles', argv, dataDir, { ...allocatorEnv(running), ...ENV })
    try {
      await waitHealthy(addresses.master, 20_000, launched)
    } catch (error) {
      await stopRole(launched)
      throw error
    }
    return launched
  }
  let launched: RoleProcess | undefined = await launch()
  const stop = async () => {
    const running = launched
    launched = undefined
    if (running) await stopRole(running, WORKER_STOP_MS)
  }
  return {
    layout: 'one-process',
    addresses,
    get pids(): Record<string, number> {
      return launched ? { roles: launched.proc.pid } : {}
    },
    async startWorker(threads) {
      await stop()
      launched = await launch(threads)
      return { processes: { 'roles and worker': launched.proc.pid }, stop }
    },
    stop,
  }
}

/** A system somebody else runs: nothing to stop, no pids to read. */
export function remoteSystem(addresses: Addresses, dataDir: string): BenchSystem {
  return { layout: 'given', addresses, startWorker: workerStarter(addresses.kv, dataDir), stop: async () => {} }
}

/** Starts `bun run scripts/bench/<script>.ts <args>` with its output appended to `<logDir>/<script>.log`. */
function spawnScript(script: string, args: readonly string[], logDir: string): Subprocess {
  const proc = Bun.spawn(['bun', 'run', `scripts/bench/${script}.ts`, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...SCRIPT_ENV },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  void (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) appendFileSync(join(logDir, `${script}.log`), chunk)
  })()
  return proc
}

/** A bare Bun.serve from baseline-server.ts, listening on a free port once this resolves. */
export async function startBaseline(
  mode: 'constant' | 'file' | 'write' | 'store' | 'pass',
  path: string | undefined,
  logDir: string,
): Promise<{ address: string; pid: number } & Stoppable> {
  const address = `127.0.0.1:${freePort()}`
  const proc = spawnScript('baseline-server', [mode, address.split(':')[1]!, ...(path ? [path] : [])], logDir)
  const stop = async () => {
    proc.kill('SIGKILL')
    await proc.exited
  }
  try {
    await waitHealthy(address, 15_000)
  } catch (error) {
    await stop()
    throw error
  }
  return { address, pid: proc.pid, stop }
}

/** Debian's nginx (`apt-get install -y nginx`). */
export const NGINX = '/usr/sbin/nginx'

/**
 * Debian's nginx serving `file` with sendfile on a free port, one worker process (the storage role it is compared
 * with is one process too), its own configuration, pid and temp files in a folder under `logDir`, no access log.
 */
export async function startNginx(file: string, logDir: string): Promise<{ url: string } & Stoppable> {
  const port = freePort()
  const prefix = join(logDir, `nginx-${port}`)
  mkdirSync(prefix, { recursive: true })
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(
    conf,
    `# Written by the bench: the reference server for storage GET /getImage.
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
master_process on;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port};
    location = /health { return 200 'ok'; }
    location / { root ${dirname(file)}; default_type image/png; }
  }
}
`,
  )
  const proc = Bun.spawn([NGINX, '-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')], { stdout: 'ignore', stderr: 'pipe' })
  const address = `127.0.0.1:${port}`
  const stop = async () => {
    proc.kill('SIGTERM')
    await proc.exited
  }
  try {
    await waitHealthy(address, 15_000)
  } catch (error) {
    await stop()
    throw new Error(`nginx did not start: ${(error as Error).message}; ${await new Response(proc.stderr).text()}`)
  }
  return { url: `http://${address}/${basename(file)}`, stop }
}

export interface RawWorkResult {
  readonly images: number
  readonly seconds: number
  readonly imagesPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

/** The raw image work (see raw-work.ts); `anchor`: with the fixed encoder of 2026-11-30 instead of the worker's own. */
export async function runRawWork(threads: number, files: readonly string[], logDir: string, anchor = false): Promise<RawWorkResult> {
  const proc = spawnScript('raw-work', [String(threads), ...(anchor ? ['--anchor'] : []), ...files], logDir)
  const [out, code] = await Promise.all([new Response(proc.stdout as ReadableStream).text(), proc.exited])
  if (code !== 0) throw new Error(`raw-work.ts exited ${code}; see ${join(logDir, 'raw-work.log')}`)
  return JSON.parse(out) as RawWorkResult
}
