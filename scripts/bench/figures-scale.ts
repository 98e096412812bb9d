// Cost that stays flat as the data grows: the database and storage roles over a large data folder beside an empty one.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, type RoleProcess, spawnRole, waitHealthy } from '../../tests/helpers/processes.ts'
import { type BenchContext, rounds } from './context.ts'
import { fillAndDrain } from './figures-claims.ts'
import { fillDataFolder } from './large-data.ts'
import { type Figure, figure } from './model.ts'
import { MiB } from './stats.ts'
import { assertClean, runWrk } from './wrk.ts'

const SIZES = { full: { tasks: 1_000_000, images: 100_000 }, quick: { tasks: 100_000, images: 10_000 } }
const ENV = { PIXMILL_LOG_LEVEL: 'warn' }

const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024
const median = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

interface Round {
  readonly databaseStartMs: number
  readonly storageStartMs: number
  readonly databaseRss: number
  readonly storageRss: number
  readonly countsPerSecond: number
  readonly countsP99Ms: number
  readonly claimsPerSecond: number
}

/** Starts a role and answers how long it took to answer /health with 200, from the spawn. */
async function timedStart(role: 'database' | 'storage', kv: string, dataDir: string): Promise<{ proc: RoleProcess; address: string; ms: number }> {
  const address = `127.0.0.1:${freePort()}`
  const started = performance.now()
  const proc = await spawnRole(role, [address, kv], { dataDir, env: ENV })
  await waitHealthy(address, 60_000, proc)
  return { proc, address, ms: performance.now() - started }
}

/** One round over one data folder: start both roles, read their RSS, load /counts, drain a queue of claims, stop. */
async function measureFolder(ctx: BenchContext, kv: string, dataDir: string, name: string): Promise<Round> {
  const database = await timedStart('database', kv, dataDir)
  const storage = await timedStart('storage', kv, dataDir)
  try {
    const [databaseRss, storageRss] = [rss(database.proc.proc.pid), rss(storage.proc.proc.pid)]
    const counts = assertClean(
      await runWrk({ url: `http://${database.address}/counts`, connections: 64, seconds: ctx.seconds, workDir: ctx.workDir }),
      `database GET /counts (${name})`,
    )
    const { drain, claimed } = await fillAndDrain(ctx, `http://${database.address}`, join(ctx.workDir, `scale-claims-${name}.txt`))
    return {
      databaseStartMs: database.ms,
      storageStartMs: storage.ms,
      databaseRss,
      storageRss,
      countsPerSecond: counts.requestsPerSecond,
      countsP99Ms: counts.latencyMs.p99,
      claimsPerSecond: claimed / drain.seconds,
    }
  } finally {
    await Promise.allSettled([database.proc.kill9(), storage.proc.kill9()])
  }
}

/**
 * The database and storage roles started over a folder holding `tasks` task records and `images` images, and over an
 * empty one, in alternating rounds (their own kv, not the run's system): start-up time, RSS after start, `/counts`
 * and claims. Each figure is the large folder's median beside the empty one's: the ratio is how much the data costs.
 */
export async function scaleFigures(ctx: BenchContext): Promise<Figure[]> {
  const sizes = ctx.quick ? SIZES.quick : SIZES.full
  const empty = join(ctx.workDir, 'scale-empty')
  const large = join(ctx.workDir, 'scale-large')
  mkdirSync(empty, { recursive: true })
  const began = performance.now()
  await fillDataFolder(large, sizes)
  ctx.progress(
    `  filled a data folder with ${sizes.tasks.toLocaleString('en-US')} task records and ${sizes.images.toLocaleString('en-US')} images in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  )
  const kvAddress = `127.0.0.1:${freePort()}`
  const kv = await spawnRole('kv', [kvAddress], { dataDir: join(ctx.workDir, 'scale-kv'), healthAt: kvAddress, env: ENV })
  const results: Record<'empty' | 'large', Round[]> = { empty: [], large: [] }
  try {
    for (let i = 0; i < rounds(ctx); i++) {
      for (const [name, dir] of [
        ['empty', empty],
        ['large', large],
      ] as const)
        results[name].push(await measureFolder(ctx, kvAddress, dir, `${name}-${i}`))
    }
  } finally {
    await kv.kill9()
  }
  const of = (name: 'empty' | 'large', pick: (r: Round) => number) => median(results[name].map(pick))
  const load = `${sizes.tasks.toLocaleString('en-US')} task records, ${sizes.images.toLocaleString('en-US')} images; median of ${rounds(ctx)}`
  const make = (id: string, label: string, unit: string, pick: (r: Round) => number, extra: Partial<Figure> = {}) => {
    const f = figure({
      id,
      label,
      load,
      value: of('large', pick),
      unit,
      baseline: { label: 'the same over an empty data folder', value: of('empty', pick), unit },
      ...extra,
    })
    ctx.progress(`  ${label}: ${f.value.toFixed(1)} ${unit} against ${f.baseline.value.toFixed(1)} (${Math.round(f.ratio * 100)} %)`)
    return f
  }
  return [
    make('scale.claims', 'database POST /getNewTask over a large store', 'claims/s', (r) => r.claimsPerSecond),
    make('scale.counts', 'database GET /counts over a large store', 'req/s', (r) => r.countsPerSecond, { p99Ms: of('large', (r) => r.countsP99Ms) }),
    make('scale.start.database', 'database start-up over a large store', 'ms', (r) => r.databaseStartMs),
    make('scale.start.storage', 'storage start-up over many images', 'ms', (r) => r.storageStartMs),
    make('scale.rss.database', 'database RSS after start over a large store', 'MiB', (r) => r.databaseRss / MiB),
    make('scale.rss.storage', 'storage RSS after start over many images', 'MiB', (r) => r.storageRss / MiB),
  ]
}
