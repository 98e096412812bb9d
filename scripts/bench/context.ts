// What every figure gets: the system under test, how long to load it, where to put scratch files.
import type { BenchSystem } from './processes.ts'
import { assertClean, runWrk, type WrkOptions, type WrkResult } from './wrk.ts'

export interface BenchContext {
  readonly quick: boolean
  /** Length of each measured wrk run (the full mode runs five rounds of the baseline then the figure). */
  readonly seconds: number
  /** Scratch folder of this run (scripts, images, logs of helper processes). */
  readonly workDir: string
  readonly system: BenchSystem
  /** A task this run created, for the read figures (`/getById`, `/isReady`) and as the id of the stored 1 MiB image. */
  readonly fixtureId: number
  /** Tasks this run created: the claims figure finishes these and puts anyone else's back. */
  readonly ownTasks: Set<number>
  readonly progress: (line: string) => void
}

/** Rounds of a figure and of its baseline, alternated: on a shared machine the load of others comes and goes. */
export function rounds(ctx: BenchContext): number {
  return ctx.quick ? 1 : 5
}

/**
 * A figure and its baseline, each warmed up 1 s in the full mode (the JIT and the connections of a fresh server are
 * not its speed), then measured in rounds of `ctx.seconds` each, the baseline right before the figure. It answers the
 * round whose ratio is the median, both runs whole (their latencies and bytes belong to them): a round's two runs
 * see the same machine, while this machine's own speed drifts by a quarter from one round to the next. Fails on any
 * error answer: a fast error is not throughput.
 */
export async function measurePair(
  ctx: BenchContext,
  names: { readonly base: string; readonly role: string },
  base: Omit<WrkOptions, 'seconds' | 'workDir'>,
  role: Omit<WrkOptions, 'seconds' | 'workDir'>,
): Promise<{ base: WrkResult; role: WrkResult }> {
  const run = async (what: string, options: typeof base, seconds: number) => assertClean(await runWrk({ ...options, seconds, workDir: ctx.workDir }), what)
  if (!ctx.quick) {
    await run(names.base, base, 1)
    await run(names.role, role, 1)
  }
  const pairs: Array<{ base: WrkResult; role: WrkResult }> = []
  for (let i = 0; i < rounds(ctx); i++) {
    const baseRun = await run(names.base, base, ctx.seconds)
    pairs.push({ base: baseRun, role: await run(names.role, role, ctx.seconds) })
  }
  const rate = (r: WrkResult) => Math.round(r.requestsPerSecond).toLocaleString('en-US')
  ctx.progress(
    `  ${names.role}: ${pairs.map((p) => `${rate(p.role)} / ${rate(p.base)} (${Math.round((100 * p.role.requestsPerSecond) / p.base.requestsPerSecond)} %)`).join(', ')} req/s against ${names.base}`,
  )
  const ratio = (p: (typeof pairs)[number]) => p.role.requestsPerSecond / p.base.requestsPerSecond
  return pairs.sort((a, b) => ratio(a) - ratio(b))[Math.floor(pairs.length / 2)]!
}

/** Fetches and reads the answer as text, with PIXMILL_TOKEN when it is set; throws on a non-2xx answer. */
export async function call(url: string, init?: RequestInit): Promise<string> {
  const token = process.env.PIXMILL_TOKEN
  const headers = new Headers(init?.headers)
  if (token) headers.set('authorization', `Bearer ${token}`)
  const response = await fetch(url, { ...init, headers })
  const text = await response.text()
  if (!response.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: ${response.status} ${text.slice(0, 200)}`)
  return text
}
