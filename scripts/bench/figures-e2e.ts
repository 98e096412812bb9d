// End to end: PNGs uploaded through the master, one worker of 1 and 2 threads, beside the raw image work alone.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BenchContext, call } from './context.ts'
import { writeImageSet } from './images.ts'
import { processCpuMs } from './machine.ts'
import { type Figure, figure } from './model.ts'
import { type RawWorkResult, runRawWork } from './processes.ts'
import { MiB, percentile } from './stats.ts'

const THREADS = [1, 2] as const

/**
 * Images per batch: a few seconds of work at the speeds measured here (512x512: 80-100 images/s end to end; 2048x2048:
 * 6-7), so that the start of a batch (its first upload and fetch) and its end (the last store and report, a loop idle
 * while the other finishes) weigh little against the steady flow. 200 of 512x512, as the issue measured.
 */
const SIZES = (quick: boolean) => [
  { size: 512, count: quick ? 6 : 200 },
  { size: 2048, count: quick ? 2 : 24 },
]

/** How each layout is named in the figures' ids and labels. */
const LAYOUTS = {
  separate: { id: 'separate', label: 'roles in separate processes' },
  'one-process': { id: 'one-process', label: 'roles and worker in one process' },
  given: { id: 'given', label: 'the system given' },
} as const

interface Finished {
  readonly id: number
  readonly finishedAt: number
}

/** Uploads one PNG through the master; answers the task id. */
async function upload(master: string, png: Uint8Array<ArrayBuffer>): Promise<number> {
  return Number(await call(`http://${master}/new`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } }))
}

/**
 * Waits until every task is finished and answers when each was, from the database's own `updatedAt`: polling only
 * finds out, so the latency is not rounded to the polling interval. Polls the oldest unfinished task (tasks finish
 * nearly in order) every `pollMs`: ten times a second for a batch, as a patient client would, so that the finding
 * out costs the system little beside the work being measured.
 */
async function waitFinished(master: string, ids: readonly number[], timeoutMs: number, pollMs: number): Promise<Finished[]> {
  const deadline = performance.now() + timeoutMs
  const done: Finished[] = []
  for (const id of ids) {
    for (;;) {
      const task = JSON.parse(await call(`http://${master}/status?id=${id}`)) as { state: number; updatedAt: string; error?: string }
      if (task.state === 2) {
        done.push({ id, finishedAt: Date.parse(task.updatedAt) })
        break
      }
      if (task.state === 3) throw new Error(`task ${id} failed: ${task.error}`)
      if (performance.now() > deadline) throw new Error(`task ${id} not finished within ${timeoutMs} ms`)
      await Bun.sleep(pollMs)
    }
  }
  return done
}

/** CPU time of each process so far, in ms (processCpuMs). */
function cpuMs(pids: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processCpuMs(pid)]))
}

/** One batch: upload every image one after another as fast as the master takes them, then wait for all. */
async function batch(ctx: BenchContext, pngs: readonly Uint8Array<ArrayBuffer>[], pollMs = 100) {
  const master = ctx.system.addresses.master
  const start = Date.now()
  const uploadedAt: number[] = []
  const ids: number[] = []
  for (const png of pngs) {
    uploadedAt.push(Date.now())
    const id = await upload(master, png)
    ctx.ownTasks.add(id)
    ids.push(id)
  }
  const finished = await waitFinished(master, ids, 60_000 + pngs.length * 10_000, pollMs)
  const latencies = finished.map((f, i) => f.finishedAt - uploadedAt[i]!)
  const seconds = (Math.max(...finished.map((f) => f.finishedAt)) - start) / 1000
  return { imagesPerSecond: pngs.length / seconds, latencies }
}

export async function e2eFigures(ctx: BenchContext): Promise<Figure[]> {
  const dir = join(ctx.workDir, 'images')
  mkdirSync(dir, { recursive: true })
  const sets = await Promise.all(
    SIZES(ctx.quick).map(async ({ size, count }) => {
      const files = await writeImageSet(dir, size, count)
      return { size, files, pngs: files.map((f) => new Uint8Array(readFileSync(f))) }
    }),
  )
  const figures: Figure[] = []
  const rounds = ctx.quick ? 1 : 3
  const layout = LAYOUTS[ctx.system.layout]
  for (const threads of THREADS) {
    const worker = await ctx.system.startWorker(threads)
    try {
      for (const set of sets) {
        // The codec limit and the system in turn, so that both see the same share of a machine others use too.
        const raws: RawWorkResult[] = []
        const anchors: RawWorkResult[] = []
        const runs: Awaited<ReturnType<typeof batch>>[] = []
        // CPU of every process of the system (and the worker) over the measured batches, per image.
        const processes = worker.processes
        const cpuSpent: Record<string, number> = {}
        // The whole set once, unmeasured, as the raw work gets its own: the JIT of every role and the first use of each
        // page of the allocators' memory are not the system's throughput (the first measured batch was 10-20 % slower).
        await batch(ctx, set.pngs, 5)
        for (let i = 0; i < rounds; i++) {
          raws.push(await runRawWork(threads, set.files, ctx.workDir))
          anchors.push(await runRawWork(threads, set.files, ctx.workDir, true))
          // One image first, right before the batch: the worker's start and the JIT are not its throughput, and a
          // worker left idle during the raw run polls only every 0.5-1.5 s; after a task its loops poll within 0.1 s,
          // so the batch starts as soon as that image is seen finished.
          await batch(ctx, set.pngs.slice(0, 1), 5)
          const before = cpuMs(processes)
          runs.push(await batch(ctx, set.pngs))
          const after = cpuMs(processes)
          for (const name of Object.keys(processes)) cpuSpent[name] = (cpuSpent[name] ?? 0) + after[name]! - before[name]!
        }
        const images = set.pngs.length * rounds
        const cpuPerImage = Object.fromEntries(Object.entries(cpuSpent).map(([name, ms]) => [`cpuMsPerImage.${name}`, Number((ms / images).toFixed(2))]))
        const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length
        const rate = mean(runs.map((r) => r.imagesPerSecond))
        const rawRate = mean(raws.map((r) => r.imagesPerSecond))
        const latencies = runs.flatMap((r) => r.latencies)
        const mib = set.pngs.reduce((sum, p) => sum + p.byteLength, 0) / set.pngs.length / MiB
        const name = `${set.size}x${set.size}, ${threads} thread${threads > 1 ? 's' : ''}, ${layout.label}`
        const list = (values: number[]) => values.map((v) => v.toFixed(2)).join(', ')
        ctx.progress(
          `  end to end ${name}: ${list(runs.map((r) => r.imagesPerSecond))} images/s; raw image work: ${list(raws.map((r) => r.imagesPerSecond))}; ` +
            `raw sharp loop: ${list(anchors.map((r) => r.imagesPerSecond))} images/s; ms of CPU per image: ` +
            Object.entries(cpuSpent)
              .map(([name, ms]) => `${name} ${(ms / images).toFixed(1)}`)
              .join(', '),
        )
        figures.push(
          figure({
            id: `e2e.${layout.id}.${set.size}.t${threads}`,
            label: `end to end ${name}`,
            load: `${rounds} x ${set.pngs.length} PNGs of ${mib.toFixed(1)} MiB uploaded one after another`,
            value: rate,
            unit: 'images/s',
            p50Ms: percentile(latencies, 50),
            p99Ms: percentile(latencies, 99),
            baseline: {
              label: `raw image work, ${threads} thread${threads > 1 ? 's' : ''}`,
              value: rawRate,
              unit: 'images/s',
              p99Ms: percentile(
                raws.map((r) => r.p99Ms),
                50,
              ),
            },
            anchor: {
              label: `the raw sharp loop of 2026-11-30 (${threads} thread${threads > 1 ? 's' : ''})`,
              value: mean(anchors.map((r) => r.imagesPerSecond)),
              unit: 'images/s',
            },
            details: {
              images,
              ...cpuPerImage,
              rawP50Ms: Math.round(
                percentile(
                  raws.map((r) => r.p50Ms),
                  50,
                ),
              ),
            },
          }),
        )
      }
    } finally {
      await worker.stop()
    }
  }
  return figures
}
