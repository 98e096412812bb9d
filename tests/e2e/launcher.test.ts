// The launcher: all roles in one process doing real work, and separate processes with prefixed logs and restarts.
import { afterAll, describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import sharp from 'sharp'
import { allocatorEnv } from '../../src/runtime/allocator.ts'
import { encodePng } from '../helpers/png.ts'
import { freePort, REPO_ROOT, waitHealthy } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const dirs: Array<ReturnType<typeof tempDir>> = []
afterAll(() => {
  for (const d of dirs) d.remove()
})

/** An offset that puts every default port (3000-3003, 8080) on a free port. */
function freeOffset(): number {
  for (;;) {
    const offset = 20_000 + Math.floor(Math.random() * 20_000)
    const free = [3000, 3001, 3002, 3003, 8080].every((port) => {
      try {
        Bun.serve({ port: port + offset, hostname: '0.0.0.0', fetch: () => new Response() }).stop(true)
        return true
      } catch {
        return false
      }
    })
    if (free) return offset
  }
}

/** The names of the allocators' settings. */
const ALLOCATOR_NAMES = Object.keys(allocatorEnv([]))

/** The environment of a test's process without the allocator's settings, as a shell that never heard of them has. */
function plainEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env }
  for (const name of ALLOCATOR_NAMES) delete env[name]
  return env
}

/** The allocators' settings in `pid`'s environment now (undefined where unset). */
function allocatorSettingsOf(pid: number): Record<string, string | undefined> {
  const now = environOf(pid)
  return Object.fromEntries(ALLOCATOR_NAMES.map((name) => [name, now[name]]))
}

/** The environment a running process has now (after an execve, the new one). */
function environOf(pid: number): Record<string, string> {
  const pairs = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean)
  return Object.fromEntries(pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
}

function launch(args: string[]) {
  const dir = tempDir('pixmill-launch-')
  dirs.push(dir)
  const proc = Bun.spawn(['bun', 'run', 'scripts/launch.ts', '--data', dir.path, ...args], { cwd: REPO_ROOT, env: plainEnv(), stdout: 'pipe', stderr: 'pipe' })
  let output = ''
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      for await (const chunk of stream) output += new TextDecoder().decode(chunk)
    })()
  }
  return { proc, dir, output: () => output }
}

/** Pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        return Number(readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]) === pid
      } catch {
        return false
      }
    })
    .map(Number)
}

describe('launcher', () => {
  test('in one process: every role starts, an upload is processed, and SIGTERM exits 0', async () => {
    const offset = freeOffset()
    const run = launch(['--port-offset', String(offset), '--threads', '1'])
    try {
      const master = `127.0.0.1:${3003 + offset}`
      await waitHealthy(master, 20_000)
      await waitHealthy(`127.0.0.1:${8080 + offset}`, 20_000)
      // It restarted itself in place with the settings of the roles it runs: storage and the worker keep freed pages.
      expect(allocatorSettingsOf(run.proc.pid)).toEqual(allocatorEnv(['kv', 'database', 'storage', 'master', 'worker', 'frontend']))
      expect(allocatorEnv(['kv', 'database', 'storage', 'master', 'worker', 'frontend']).MIMALLOC_PURGE_DELAY).toBe('-1')
      const png = encodePng(1, 1, 2, 8, [[[10, 200, 30]]])
      const id = await (await fetch(`http://${master}/new`, { method: 'POST', body: png })).text()
      await waitFor(`task ${id} to finish`, async () => (await (await fetch(`http://${master}/isReady?id=${id}`)).text()) === '1', 20_000).catch(
        (error: Error) => {
          throw new Error(`${error.message}; output:\n${run.output()}`)
        },
      )
      const result = Buffer.from(await (await fetch(`http://${master}/get?id=${id}`)).arrayBuffer())
      const { data, info } = await sharp(result).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
      expect(info.channels).toBe(4)
      expect([...data]).toEqual([200, 10, 30, 255])
      expect(run.output()).toContain(`http://localhost:${8080 + offset}/`)
      expect(run.output()).toContain(`http://localhost:${3003 + offset}/swagger`)
    } finally {
      run.proc.kill('SIGTERM')
    }
    expect(await run.proc.exited).toBe(0)
  })

  test('as separate processes: one JSON log stream naming each role, a killed role is restarted, SIGTERM stops them all', async () => {
    const offset = freeOffset()
    const run = launch(['--separate', '--roles', 'kv,database,master', '--port-offset', String(offset)])
    const database = `127.0.0.1:${3001 + offset}`
    try {
      await waitHealthy(database, 20_000)
      const children = childrenOf(run.proc.pid)
      expect(children.length).toBe(3)
      const childOf = (role: string) => children.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`src/${role}.ts`))!
      // The launcher runs no role and keeps its environment; each child gets the settings of its own role.
      expect(allocatorSettingsOf(run.proc.pid)).toEqual(Object.fromEntries(ALLOCATOR_NAMES.map((name) => [name, undefined])))
      for (const role of ['kv', 'database', 'master']) expect(allocatorSettingsOf(childOf(role))).toEqual(allocatorEnv([role]))
      expect([allocatorEnv(['database']).MIMALLOC_PURGE_DELAY, allocatorEnv(['master']).MIMALLOC_PURGE_DELAY]).toEqual(['-1', '1000'])
      const databaseChild = childOf('database')
      process.kill(databaseChild, 'SIGKILL')
      await waitFor('the launcher to tell the database exited', () => /\[database\] exited with/.test(run.output()))
      await waitHealthy(database, 15_000)
      expect(childrenOf(run.proc.pid)).not.toContain(databaseChild)
      const logLines = run
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { role?: string; msg?: string })
      expect(logLines.some((line) => line.role === 'kv' && /listening/.test(line.msg ?? ''))).toBe(true)
      expect(logLines.some((line) => line.role === 'database' && /listening/.test(line.msg ?? ''))).toBe(true)
    } finally {
      run.proc.kill('SIGTERM')
    }
    expect(await run.proc.exited).toBe(0)
    expect(childrenOf(run.proc.pid)).toEqual([])
  })

  test("a master started on its own restarts in place with the master's settings: freed pages handed back after 1 s", async () => {
    const dir = tempDir('pixmill-allocator-')
    dirs.push(dir)
    // No kv answers there: the master keeps waiting for it, with its settings in place from the restart on.
    const proc = Bun.spawn(['bun', 'run', 'src/master.ts', `127.0.0.1:${freePort()}`, `127.0.0.1:${freePort()}`], {
      cwd: REPO_ROOT,
      env: { ...plainEnv(), PIXMILL_DATA_DIR: dir.path, PIXMILL_LOG_LEVEL: 'warn' },
      stdout: 'ignore',
      stderr: 'ignore',
    })
    try {
      await waitFor('the master to restart in place', () => allocatorSettingsOf(proc.pid).MIMALLOC_PURGE_DELAY !== undefined)
      expect(allocatorSettingsOf(proc.pid)).toEqual({ ...allocatorEnv(['master']), MIMALLOC_PURGE_DELAY: '1000' })
    } finally {
      proc.kill('SIGKILL')
    }
    await proc.exited
  })

  test("a role started on its own restarts in place (same pid) with the allocator's settings; an operator's own value wins", async () => {
    const dir = tempDir('pixmill-allocator-')
    dirs.push(dir)
    const start = (env: Record<string, string | undefined>) => {
      const address = `127.0.0.1:${freePort()}`
      const proc = Bun.spawn(['bun', 'run', 'src/kv.ts', address], {
        cwd: REPO_ROOT,
        env: { ...env, PIXMILL_DATA_DIR: dir.path, PIXMILL_LOG_LEVEL: 'warn' },
        stdout: 'ignore',
        stderr: 'ignore',
      })
      return { proc, address }
    }
    const cases: Array<[Record<string, string | undefined>, Record<string, string>]> = [
      [plainEnv(), allocatorEnv(['kv'])],
      [
        { ...plainEnv(), MIMALLOC_PURGE_DELAY: '250' },
        { ...allocatorEnv(['kv']), MIMALLOC_PURGE_DELAY: '250' },
      ],
      [
        { ...plainEnv(), MALLOC_TRIM_THRESHOLD_: '1048576' },
        { ...allocatorEnv(['kv']), MALLOC_TRIM_THRESHOLD_: '1048576' },
      ],
    ]
    for (const [env, expected] of cases) {
      const kv = start(env)
      try {
        await waitHealthy(kv.address, 20_000)
        expect(allocatorSettingsOf(kv.proc.pid)).toEqual(expected)
      } finally {
        kv.proc.kill('SIGTERM')
      }
      expect(await kv.proc.exited).toBe(0)
    }
  })

  test('--help says how; a bad option prints the help and exits non-zero', () => {
    const help = Bun.spawnSync(['bun', 'run', 'scripts/launch.ts', '--help'], { cwd: REPO_ROOT })
    expect(help.exitCode).toBe(0)
    expect(help.stdout.toString()).toContain('--separate')
    const bad = Bun.spawnSync(['bun', 'run', 'scripts/launch.ts', '--roles', 'kv,nonsense'], { cwd: REPO_ROOT, stderr: 'pipe' })
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr.toString()).toContain('unknown role(s): nonsense')
  })
})
