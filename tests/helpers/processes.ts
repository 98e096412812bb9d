// Real role processes for end-to-end tests: free ports, logs kept per test, kill -9 and SIGTERM.

import { appendFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Subprocess } from 'bun'
import { allocatorEnv } from '../../src/runtime/allocator.ts'

export const REPO_ROOT = resolve(import.meta.dir, '../..')

/**
 * Ports handed out below the kernel's ephemeral range (32768-60999 on Linux): a port the OS picked for us there
 * could meanwhile become the source port of some outgoing connection, before the role meant to listen on it starts.
 */
const PORTS = { from: 20_000, to: 32_000 }
const handedOut = new Set<number>()

/** A port nobody listens on right now, and not handed out before by this process. */
export function freePort(): number {
  for (let tries = 0; tries < 1000; tries++) {
    const port = PORTS.from + Math.floor(Math.random() * (PORTS.to - PORTS.from))
    if (handedOut.has(port)) continue
    try {
      // Every interface, as a role given `:port` listens.
      Bun.serve({ port, hostname: '0.0.0.0', fetch: () => new Response() }).stop(true)
    } catch {
      continue
    }
    handedOut.add(port)
    return port
  }
  throw new Error(`no free port in ${PORTS.from}-${PORTS.to}`)
}

export interface RoleProcess {
  readonly role: string
  readonly args: readonly string[]
  readonly proc: Subprocess
  /** Where its output goes. */
  readonly logFile: string
  /** Resolves to the exit code. */
  readonly exited: Promise<number>
  kill9(): Promise<void>
  /** SIGTERM, then the exit code. */
  terminate(): Promise<number>
}

export interface SpawnOptions {
  readonly dataDir: string
  readonly env?: Record<string, string>
  /** GET this address's /health until 200 before resolving. */
  readonly healthAt?: string
  readonly timeoutMs?: number
}

/** Starts `argv` from the repository root as `role`, with its output in `<dataDir>/<role>.log`. */
export function spawnCommand(role: string, argv: readonly string[], dataDir: string, env: Record<string, string> = {}): RoleProcess {
  const logFile = join(dataDir, `${role}.log`)
  const proc = Bun.spawn([...argv], {
    cwd: REPO_ROOT,
    env: { ...process.env, PIXMILL_DATA_DIR: dataDir, PIXMILL_LOG_LEVEL: 'info', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      for await (const chunk of stream as ReadableStream<Uint8Array>) appendFileSync(logFile, chunk)
    })()
  }
  return {
    role,
    args: argv.slice(1),
    proc,
    logFile,
    exited: proc.exited,
    async kill9() {
      proc.kill('SIGKILL')
      await proc.exited
    },
    async terminate() {
      proc.kill('SIGTERM')
      return proc.exited
    },
  }
}

/** Starts `bun run src/<role>.ts <args>` from the repository root, with its output in `<dataDir>/<role>.log`. */
export async function spawnRole(role: string, args: readonly string[], options: SpawnOptions): Promise<RoleProcess> {
  // The allocators' settings of the role as a launcher gives them: it need not restart itself in place to get them.
  const env = { ...allocatorEnv([role]), ...options.env }
  const running = { ...spawnCommand(role, ['bun', 'run', `src/${role}.ts`, ...args], options.dataDir, env), args }
  if (options.healthAt) await waitHealthy(options.healthAt, options.timeoutMs ?? 20_000, running)
  return running
}

/** Polls `http://<address>/health` until it answers 200. */
export async function waitHealthy(address: string, timeoutMs: number, proc?: RoleProcess): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let exitCode: number | null = null
  void proc?.exited.then((code) => (exitCode = code))
  while (performance.now() < deadline) {
    if (exitCode !== null) throw new Error(`${proc?.role} exited with ${exitCode} before it was healthy; its log ends:\n${await logTail(proc?.logFile)}`)
    try {
      const response = await fetch(`http://${address}/health`, { signal: AbortSignal.timeout(1000) })
      await response.body?.cancel()
      if (response.status === 200) return
    } catch {
      // not listening yet
    }
    await Bun.sleep(50)
  }
  throw new Error(`${address} was not healthy within ${timeoutMs} ms${proc ? `; its log ends:\n${await logTail(proc.logFile)}` : ''}`)
}

/** The last lines of a role's log, for a failure's message: the folder is gone once the test's cleanup has run. */
async function logTail(logFile: string | undefined, lines = 20): Promise<string> {
  if (logFile === undefined) return '(no log)'
  const text = await Bun.file(logFile)
    .text()
    .catch(() => '(no log)')
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

/** Fetches `http://<address><path>` and reads the answer as text. */
export async function httpText(address: string, path: string, init?: RequestInit): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(`http://${address}${path}`, init)
  return { status: response.status, text: await response.text(), headers: response.headers }
}
