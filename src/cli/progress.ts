// How `pixmill process` shows its progress: bars on a terminal (cli-progress), plain lines anywhere else.
import cliProgress from 'cli-progress'

/** The batch as a whole. */
export interface BatchCounts {
  readonly total: number
  readonly uploaded: number
  readonly processing: number
  readonly done: number
  readonly failed: number
  readonly skipped: number
}

export interface ProgressView {
  /** A file's stage changed: uploading (with the share sent), processing, downloading. */
  file(name: string, stage: 'uploading' | 'processing' | 'downloading', share?: number): void
  /** A file is through: its result written, or failed with the reason. */
  settled(name: string, outcome: { done: true; path: string } | { done: false; reason: string }): void
  /** A line of its own (a skipped file, a resumed one). */
  note(line: string): void
  /** The batch figures changed. */
  batch(counts: BatchCounts): void
  stop(): void
}

/** Images per second and time left, from the batch so far. */
function pace(counts: BatchCounts, startedAt: number): { rate: string; eta: string } {
  const seconds = (performance.now() - startedAt) / 1000
  const through = counts.done + counts.failed
  const rate = seconds > 0 ? through / seconds : 0
  const left = counts.total - counts.skipped - through
  const eta = rate > 0 ? `${Math.ceil(left / rate)} s` : '-'
  return { rate: rate.toFixed(1), eta }
}

/** One bar for the batch and one per file in flight, redrawn in place. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  const startedAt = performance.now()
  const bars = new cliProgress.MultiBar(
    {
      stream,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
      barsize: 24,
      format: (options, params, payload: { kind: 'batch' | 'file'; name?: string; stage?: string; text?: string }) => {
        const bar = cliProgress.Format.BarFormat(params.progress, options)
        if (payload.kind === 'file') return `  ${bar} ${String(Math.round(params.progress * 100)).padStart(3)}% ${payload.stage?.padEnd(11)} ${payload.name}`
        return `${bar} ${params.value}/${params.total} ${payload.text ?? ''}`
      },
    },
    cliProgress.Presets.shades_classic,
  )
  const batchBar = bars.create(1, 0, { kind: 'batch' })
  const files = new Map<string, cliProgress.SingleBar>()
  return {
    file(name, stage, share = 0) {
      let bar = files.get(name)
      if (!bar) {
        bar = bars.create(100, 0, { kind: 'file', name, stage })
        files.set(name, bar)
      }
      bar.update(stage === 'uploading' ? Math.round(share * 100) : stage === 'processing' ? 100 : 100, { kind: 'file', name, stage })
    },
    settled(name, outcome) {
      const bar = files.get(name)
      if (bar) bars.remove(bar)
      files.delete(name)
      if (!outcome.done) bars.log(`failed  ${name}: ${outcome.reason}\n`)
    },
    note(line) {
      bars.log(`${line}\n`)
    },
    batch(counts) {
      const { rate, eta } = pace(counts, startedAt)
      batchBar.setTotal(Math.max(1, counts.total - counts.skipped))
      batchBar.update(counts.done + counts.failed, {
        kind: 'batch',
        text: `uploaded ${counts.uploaded}, processing ${counts.processing}, done ${counts.done}, failed ${counts.failed} | ${rate} images/s, ${eta} left`,
      })
    },
    stop() {
      bars.stop()
    },
  }
}

/** One line per event, for logs, pipes and CI: nothing is redrawn. */
export function lineProgress(write: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): ProgressView {
  const startedAt = performance.now()
  let last: BatchCounts | undefined
  return {
    file(name, stage) {
      if (stage === 'processing') write(`uploaded ${name}`)
    },
    settled(name, outcome) {
      const through = last ? last.done + last.failed + 1 : 0
      const of = last ? `[${through}/${last.total - last.skipped}] ` : ''
      write(outcome.done ? `${of}done ${name} -> ${outcome.path}` : `${of}failed ${name}: ${outcome.reason}`)
    },
    note: write,
    batch(counts) {
      last = counts
    },
    stop() {
      if (last) write(`${pace(last, startedAt).rate} images/s`)
    },
  }
}
