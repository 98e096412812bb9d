// Separate-process mode of the launcher: one child per role, their logs merged, restarts with back-off, clean stop.

import { resolve } from 'node:path'
import type { Subprocess } from 'bun'
import { withAllocatorEnv } from '../src/runtime/allocator.ts'

const ROOT = resolve(import.meta.dir, '..')

export interface ChildSpec {
  readonly role: string
  readonly args: readonly string[]
}

/**
 * Copies a child's output to ours line by line. A JSON log line already names its role and passes through unchanged, so
 * a log collector reads the merged stream as it would one role's; anything else (a readable line on a terminal, a crash
 * trace) gets the role as a prefix.
 */
async function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string, out: NodeJS.WriteStream): Promise<void> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true })
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) out.write(line.startsWith('{') ? `${line}\n` : `${prefix}${line}\n`)
  }
  if (pending) out.write(pending.startsWith('{') ? `${pending}\n` : `${prefix}${pending}\n`)
}

/** Starts every child, restarts one that exits while we are running, stops all on SIGINT/SIGTERM and exits 0. */
export async function runSeparate(specs: readonly ChildSpec[]): Promise<void> {
  let stopping = false
  const children = new Map<string, Subprocess>()
  const width = Math.max(...specs.map((s) => s.role.length))
  const childEnv =
    process.stdout.isTTY === true && process.env.PIXMILL_LOG_FORMAT === undefined ? { ...process.env, PIXMILL_LOG_FORMAT: 'pretty' } : process.env

  const launch = (spec: ChildSpec, delayMs: number) => {
    const prefix = `[${spec.role.padEnd(width)}] `
    const startedAt = performance.now()
    const child = Bun.spawn(['bun', 'run', `src/${spec.role}.ts`, ...spec.args], {
      cwd: ROOT,
      // Children write to a pipe, so they would log JSON; a person watching the launcher on a terminal gets readable lines.
      // The allocators' settings of the child's role, unless the operator chose them: it need not restart to get them.
      env: withAllocatorEnv([spec.role], childEnv),
      stdout: 'pipe',
      stderr: 'pipe',
    })
    children.set(spec.role, child)
    void pipeLines(child.stdout, prefix, process.stdout)
    void pipeLines(child.stderr, prefix, process.stderr)
    void child.exited.then(async (code) => {
      if (stopping) return
      // A role that ran for a minute earns a fresh back-off; one that keeps crashing waits longer each time, up to 30 s.
      const next = performance.now() - startedAt > 60_000 ? 1000 : Math.min(delayMs * 2, 30_000)
      process.stderr.write(`${prefix}exited with ${code}; restarting in ${Math.round(delayMs / 1000)} s\n`)
      await Bun.sleep(delayMs)
      if (!stopping) launch(spec, next)
    })
  }

  for (const spec of specs) launch(spec, 1000)

  const stopAll = async (signal: string) => {
    if (stopping) return
    stopping = true
    process.stderr.write(`${signal}: stopping ${[...children.keys()].join(', ')}\n`)
    for (const child of children.values()) child.kill('SIGTERM')
    const timeout = Bun.sleep(15_000).then(() => {
      for (const child of children.values()) child.kill('SIGKILL')
    })
    await Promise.race([Promise.all([...children.values()].map((c) => c.exited)), timeout])
    process.exit(0)
  }
  process.once('SIGINT', () => void stopAll('SIGINT'))
  process.once('SIGTERM', () => void stopAll('SIGTERM'))
}
