// `bun run bench`: every role against the limit of this machine, side by side in one run; a table, JSON and Markdown.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { type BenchContext, call } from './bench/context.ts'
import { claimsFigure } from './bench/figures-claims.ts'
import { e2eFigures } from './bench/figures-e2e.ts'
import { httpFigures } from './bench/figures-http.ts'
import { memoryFigures } from './bench/figures-memory.ts'
import { scaleFigures } from './bench/figures-scale.ts'
import { storageFigures } from './bench/figures-storage.ts'
import { describeMachine } from './bench/machine.ts'
import { type BenchRun, type Figure, judgeTargets, type Skipped } from './bench/model.ts'
import { type Addresses, type BenchSystem, type RoleName, remoteSystem, startOneProcessSystem, startSystem } from './bench/processes.ts'
import { consoleReport, updateReadme, writeReports } from './bench/report.ts'

const USAGE = `usage: bun run bench [--quick] [--seconds N] [--out DIR] [--readme] [--addresses kv=host:port[,database=...,storage=...,master=...]]

Starts kv, database, storage and master as separate processes (temporary data folder, free ports) and a worker
when needed, measures every figure beside its baseline with wrk (one thread), prints the table and the targets, and
writes bench-<date>.json|md and latest.json|md to DIR (default: results/). Stops everything it started.

  --quick        about a second per figure and few images (the test suite runs this)
  --seconds N    length of each load run (default 2, in five rounds with its baseline; 1, once, with --quick)
  --out DIR      where the reports go
  --readme       also put the table in README.md (between its bench markers)
  --only LIST    only these groups, comma-separated: memory, http, claims, storage, scale, e2e (default: all)
  --addresses    measure a system already running instead; addresses not given are looked up in its kv.
                 The RSS figures are skipped (the processes are not ours). Run it against a system with no
                 worker attached: the claims figure drains the queue, and the end-to-end figures start their own worker.
  --help         this text

Needs wrk: apt-get install -y wrk`

const ROLES: readonly RoleName[] = ['kv', 'database', 'storage', 'master']
const GROUPS = ['memory', 'http', 'claims', 'storage', 'scale', 'e2e'] as const
const ADDRESS = /^[^\s:,=]+:\d{1,5}$/

function fail(message: string): never {
  console.error(`Error: ${message}\n\n${USAGE}`)
  process.exit(2)
}

function parseOptions(argv: string[]) {
  const options = {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    out: { type: 'string' },
    addresses: { type: 'string' },
    readme: { type: 'boolean', default: false },
    only: { type: 'string' },
    help: { type: 'boolean', default: false },
  } as const
  const read = () => {
    try {
      return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
    } catch (error) {
      return fail((error as Error).message)
    }
  }
  const parsed = read()
  if (parsed.help) {
    console.log(USAGE)
    process.exit(0)
  }
  const seconds = parsed.seconds === undefined ? (parsed.quick ? 1 : 2) : Number(parsed.seconds)
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) fail('--seconds must be a whole number of seconds, 1-600')
  let given: Partial<Record<RoleName, string>> | undefined
  if (parsed.addresses !== undefined) {
    given = {}
    for (const pair of parsed.addresses.split(',').filter(Boolean)) {
      const [role, address] = pair.split('=')
      if (!ROLES.includes(role as RoleName) || !address || !ADDRESS.test(address))
        fail(`--addresses: "${pair}" is not <role>=<host>:<port> with role kv, database, storage or master`)
      given[role as RoleName] = address
    }
    if (!given.kv) fail('--addresses needs at least kv=host:port')
  }
  const only = parsed.only === undefined ? [...GROUPS] : parsed.only.split(',').map((g) => g.trim())
  for (const group of only) if (!(GROUPS as readonly string[]).includes(group)) fail(`--only: "${group}" is not one of ${GROUPS.join(', ')}`)
  if (parsed.readme && only.length < GROUPS.length) fail('--readme needs every group: the README table is one whole run')
  return { quick: parsed.quick, readme: parsed.readme, only: new Set(only), seconds, out: resolve(parsed.out ?? join(import.meta.dir, '..', 'results')), given }
}

/** The addresses given, the rest as the system's kv registry knows them. */
async function lookUpAddresses(given: Partial<Record<RoleName, string>>): Promise<Addresses> {
  const found: Partial<Record<RoleName, string>> = { ...given }
  for (const role of ROLES)
    found[role] ??= await call(`http://${given.kv}/get?key=${role}Address`).catch((error) =>
      fail(`--addresses: ${role} not given and not found in kv (${(error as Error).message})`),
    )
  return found as Addresses
}

const options = parseOptions(process.argv.slice(2))
if (!Bun.which('wrk')) {
  console.error('Error: wrk is not installed (Debian: apt-get install -y wrk)')
  process.exit(2)
}
const progress = (line: string) => console.error(line)
const began = performance.now()
const workDir = mkdtempSync(join(tmpdir(), 'pixmill-bench-'))
let system: BenchSystem | undefined
let cleaned: Promise<void> | undefined
const cleanUp = (keepWorkDir: boolean) =>
  (cleaned ??= (async () => {
    await system?.stop()
    if (keepWorkDir) progress(`kept ${workDir} (logs of the processes started)`)
    else rmSync(workDir, { recursive: true, force: true })
  })())
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => void cleanUp(false).then(() => process.exit(130)))
}

const figures: Figure[] = []
const skipped: Skipped[] = []
let failed = false
try {
  if (options.given) {
    system = remoteSystem(await lookUpAddresses(options.given), workDir)
    progress(
      `measuring the system at ${Object.entries(system.addresses)
        .map(([r, a]) => `${r}=${a}`)
        .join(', ')}`,
    )
  } else {
    progress('starting kv, database, storage and master')
    system = await startSystem(workDir)
  }
  // A real task with a real (tiny) image: the read figures ask for it, and any worker can process it.
  const tiny = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#3a7' } })
    .png()
    .toBuffer()
  const fixtureId = Number(
    await call(`http://${system.addresses.master}/new`, { method: 'POST', body: new Uint8Array(tiny), headers: { 'content-type': 'image/png' } }),
  )
  const ctx: BenchContext = { quick: options.quick, seconds: options.seconds, workDir, system, fixtureId, ownTasks: new Set([fixtureId]), progress }

  /** Runs one group; a failure is reported and skipped, and the others still run. */
  const step = async (id: (typeof GROUPS)[number], title: string, run: () => Promise<Figure | Figure[]>) => {
    if (!options.only.has(id)) return
    progress(title)
    try {
      figures.push(...[await run()].flat())
    } catch (error) {
      failed = true
      skipped.push({ id, reason: `failed: ${(error as Error).message}` })
      progress(`  FAILED: ${(error as Error).stack ?? error}`)
    }
  }
  // Memory first, while the processes hold nothing of earlier load; its task is drained by the claims figure.
  if ((system.pids?.storage === undefined || system.pids.master === undefined) && options.only.has('memory'))
    skipped.push({ id: 'memory', reason: 'the storage and master processes were not started by this run, so their RSS cannot be read' })
  else await step('memory', 'memory: a 200 MiB upload through the master', () => memoryFigures(ctx))
  await step('http', 'small answers at 64 connections', () => httpFigures(ctx))
  await step('claims', 'claims by 100 callers over a full queue', () => claimsFigure(ctx))
  await step('storage', 'storage: a 1 MiB PNG at 16 connections', () => storageFigures(ctx))
  // Its own kv, database and storage over prepared folders; not for a system given by --addresses.
  if (options.given && options.only.has('scale')) skipped.push({ id: 'scale', reason: 'it starts its own roles over prepared data folders' })
  else await step('scale', 'scale: database and storage over a large data folder and an empty one', () => scaleFigures(ctx))
  await step('e2e', 'end to end through the master, one worker', () => e2eFigures(ctx))
  if (!options.given && options.only.has('e2e')) {
    // The same figures with the roles and the worker in one process, as `bun run start` runs them.
    progress('starting kv, database, storage and master in one process (the worker joins them for each thread count)')
    const oneDir = join(workDir, 'one-process')
    mkdirSync(oneDir)
    const one = await startOneProcessSystem(oneDir)
    try {
      await step('e2e', 'end to end through the master, roles and worker in one process', () => e2eFigures({ ...ctx, system: one, workDir: oneDir }))
    } finally {
      await one.stop()
    }
  }
} catch (error) {
  failed = true
  progress(`Error: ${(error as Error).stack ?? error}`)
}
await cleanUp(failed)

const run: BenchRun = {
  date: new Date().toISOString(),
  command: ['bun run bench', ...process.argv.slice(2)].join(' '),
  mode: options.quick ? 'quick' : 'full',
  system: options.given ? { ...system?.addresses } : 'started',
  machine: describeMachine(),
  seconds: options.seconds,
  figures,
  targets: judgeTargets(figures),
  skipped,
  durationSeconds: (performance.now() - began) / 1000,
}
console.log(`\n${consoleReport(run)}\n`)
for (const file of writeReports(run, options.out)) progress(`wrote ${file}`)
if (options.readme) {
  updateReadme(join(import.meta.dir, '..', 'README.md'), run)
  progress('replaced the table in README.md')
}
process.exit(failed ? 1 : 0)
