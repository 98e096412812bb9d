// `bun run bench --quick` end to end, so that the benchmark tool cannot rot: every figure present with sane numbers.
import { afterAll, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BenchRun } from '../../scripts/bench/model.ts'
import { REPO_ROOT } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

const out = tempDir('pixmill-bench-test-')
afterAll(() => out.remove())

const FIGURES = [
  'memory.storage',
  'memory.master',
  'kv.get',
  'kv.set',
  'database.getById',
  'master.isReady',
  'database.getNewTask',
  'storage.getImage',
  'storage.sendImage',
  ...['claims', 'counts', 'start.database', 'start.storage', 'rss.database', 'rss.storage'].map((name) => `scale.${name}`),
  ...['separate', 'one-process'].flatMap((layout) => ['512.t1', '2048.t1', '512.t2', '2048.t2'].map((run) => `e2e.${layout}.${run}`)),
]

// wrk is part of the test setup (.ci/run installs it): without it this test fails, it does not skip.
test('bench --quick measures every figure beside its baseline and writes JSON and Markdown', async () => {
  const proc = Bun.spawn(['bun', 'run', 'scripts/bench.ts', '--quick', '--out', out.path], { cwd: REPO_ROOT, stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  if (code !== 0) console.error(stderr)
  expect(code).toBe(0)
  expect(stdout).toContain('targets:')

  const run = JSON.parse(readFileSync(join(out.path, 'latest.json'), 'utf8')) as BenchRun
  expect(run.mode).toBe('quick')
  expect(run.skipped).toEqual([])
  expect(run.figures.map((f) => f.id).sort()).toEqual([...FIGURES].sort())
  for (const f of run.figures) {
    expect(f.value, f.id).toBeGreaterThan(0)
    expect(f.baseline.value, f.id).toBeGreaterThan(0)
    expect(Number.isFinite(f.ratio) && f.ratio > 0, f.id).toBe(true)
    expect(f.ratio, f.id).toBeCloseTo(f.value / f.baseline.value, 6)
  }
  const claims = run.figures.find((f) => f.id === 'database.getNewTask')!
  expect(claims.details?.duplicateClaims).toBe(0)
  expect(Number(claims.details?.claims)).toBeGreaterThan(1000)
  for (const id of ['storage.getImage', 'storage.sendImage']) expect(run.figures.find((f) => f.id === id)!.mibPerSecond).toBeGreaterThan(0)
  // Every target of the issue is judged (met or missed: on a shared machine either can happen in a quick run).
  const e2e = FIGURES.filter((id) => id.startsWith('e2e.'))
  expect(run.targets.map((t) => t.figure).sort()).toEqual(
    [
      ...e2e,
      ...e2e.map((id) => `${id}.anchor`),
      ...FIGURES.filter((id) => id.startsWith('scale.')),
      'kv.get',
      'database.getById',
      'master.isReady',
      'memory.master',
      'memory.storage',
      'storage.getImage',
    ].sort(),
  )
  for (const id of e2e) expect(run.figures.find((f) => f.id === id)!.anchor!.value, id).toBeGreaterThan(0)
  // CPU per image of every process the run started: each role and the worker apart, or all of them in one process.
  const cpu = (id: string) => run.figures.find((f) => f.id === id)!.details!
  for (const name of ['kv', 'database', 'storage', 'master', 'worker'])
    expect(cpu('e2e.separate.512.t1')[`cpuMsPerImage.${name}`], name).toBeGreaterThanOrEqual(0)
  expect(Number(cpu('e2e.separate.512.t1')['cpuMsPerImage.worker'])).toBeGreaterThan(0)
  expect(Number(cpu('e2e.one-process.512.t1')['cpuMsPerImage.roles and worker'])).toBeGreaterThan(0)
  expect(cpu('e2e.one-process.512.t1')['cpuMsPerImage.worker']).toBeUndefined()
  // Storage's memory target counts its cache budget in (64 MiB + PIXMILL_STORAGE_CACHE_BYTES).
  expect(run.targets.find((t) => t.figure === 'memory.storage')!.text).toContain('64 MiB + its 32 MiB cache budget')
  expect(run.machine.cores).toBeGreaterThan(0)
  const md = readFileSync(join(out.path, 'latest.md'), 'utf8')
  expect(md).toContain('| kv GET /get |')
  expect(md).toContain('| figure | kv | database | storage | master | worker |')
  expect(md).toContain('bun run bench --quick')
  expect(existsSync(join(out.path, `bench-${run.date.replace(/\.\d+Z$/, '').replaceAll(':', '-')}.json`))).toBe(true)
}, 150_000)
