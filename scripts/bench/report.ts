// The run as a console table, as Markdown (results/ and the README) and as JSON.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BenchRun, Figure, Measure } from './model.ts'

/** Three significant digits at most, thousands separated: the noise here is a few per cent. */
function num(value: number): string {
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

const ms = (value: number | undefined) => (value === undefined ? '' : `${num(value)} ms`)

function result(m: Measure & { mibPerSecond?: number }): string {
  return `${num(m.value)} ${m.unit}${m.mibPerSecond !== undefined ? `, ${num(m.mibPerSecond)} MiB/s` : ''}`
}

const ratio = (f: Figure) => (f.unit === 'MiB' ? `${f.ratio.toFixed(2)}x` : `${Math.round(f.ratio * 100)} %`)

const HEADER = ['figure', 'load', 'result', 'p50', 'p99', 'baseline', 'baseline result', 'ratio', 'anchor'] as const

/** The figure against its anchor, where it has one: the anchor's result and how many times faster the figure is. */
const anchored = (f: Figure) => (f.anchor ? `${result(f.anchor)}: ${(f.value / f.anchor.value).toFixed(2)}x` : '')

function rows(run: BenchRun): string[][] {
  return run.figures.map((f) => [f.label, f.load, result(f), ms(f.p50Ms), ms(f.p99Ms), f.baseline.label, result(f.baseline), ratio(f), anchored(f)])
}

const mark = (met: boolean) => (met ? 'met' : 'MISSED')

const CPU_PREFIX = 'cpuMsPerImage.'

/** CPU per image of each process, for the end-to-end figures that measured it: a Markdown table, or nothing. */
function cpuTable(run: BenchRun): string[] {
  const measured = run.figures.filter((f) => Object.keys(f.details ?? {}).some((key) => key.startsWith(CPU_PREFIX)))
  if (measured.length === 0) return []
  const names = [...new Set(measured.flatMap((f) => Object.keys(f.details!).filter((key) => key.startsWith(CPU_PREFIX))))]
  const title = (key: string) => key.slice(CPU_PREFIX.length).replace(/^roles and worker$/, 'kv, database, storage, master and worker in one')
  return [
    'CPU time per image of each process, over the measured batches (ms):',
    '',
    `| figure | ${names.map(title).join(' | ')} |`,
    `| --- | ${names.map(() => '---').join(' | ')} |`,
    ...measured.map((f) => `| ${f.label} | ${names.map((key) => (f.details![key] === undefined ? '' : Number(f.details![key]).toFixed(1))).join(' | ')} |`),
    '',
  ]
}

/** A plain-text table for the terminal, then the targets. */
export function consoleReport(run: BenchRun): string {
  const table = [[...HEADER], ...rows(run)]
  const widths = HEADER.map((_, c) => Math.max(...table.map((r) => r[c]!.length)))
  const line = (r: string[]) =>
    r
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd()
  return [
    line(table[0]!),
    line(widths.map((w) => '-'.repeat(w))),
    ...table.slice(1).map(line),
    '',
    'targets:',
    ...run.targets.map((t) => `  [${mark(t.met)}] ${t.text}`),
    ...run.skipped.map((s) => `  skipped ${s.id}: ${s.reason}`),
  ].join('\n')
}

/** Markdown: what made it (date, machine, command), the table, the targets. Used for results/ and the README. */
export function markdownReport(run: BenchRun): string {
  const m = run.machine
  const cell = (text: string) => text.replaceAll('|', '\\|')
  return [
    `Measured ${run.date.slice(0, 10)} on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Linux ${m.kernel}, Bun ${m.bun}, wrk ${m.wrk} (one thread); ` +
      `made with \`${run.command}\` (${run.mode} mode, ${run.seconds} s per load run, ${Math.round(run.durationSeconds)} s in all).`,
    '',
    `| ${HEADER.join(' | ')} |`,
    `| ${HEADER.map(() => '---').join(' | ')} |`,
    ...rows(run).map((r) => `| ${r.map(cell).join(' | ')} |`),
    '',
    ...cpuTable(run),
    'Targets (ratios from the same run):',
    '',
    ...run.targets.map((t) => `- **${mark(t.met)}**: ${t.text}`),
    ...run.skipped.map((s) => `- skipped ${s.id}: ${s.reason}`),
    '',
  ].join('\n')
}

/** Writes bench-<date>.json|md and latest.json|md to `dir`; answers the paths written. */
export function writeReports(run: BenchRun, dir: string): string[] {
  mkdirSync(dir, { recursive: true })
  const stamp = run.date.replace(/\.\d+Z$/, '').replaceAll(':', '-')
  const json = `${JSON.stringify(run, null, 2)}\n`
  const md = `# pixmill bench\n\n${markdownReport(run)}`
  const files: [string, string][] = [
    [`bench-${stamp}.json`, json],
    [`bench-${stamp}.md`, md],
    ['latest.json', json],
    ['latest.md', md],
  ]
  return files.map(([name, text]) => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  })
}

export const README_START = '<!-- bench:start -->'
export const README_END = '<!-- bench:end -->'

/** Replaces what stands between the bench markers of the README with this run's Markdown. */
export function updateReadme(path: string, run: BenchRun): void {
  const text = readFileSync(path, 'utf8')
  const start = text.indexOf(README_START)
  const end = text.indexOf(README_END)
  if (start < 0 || end < start) throw new Error(`${path} has no ${README_START} ... ${README_END} section`)
  writeFileSync(path, `${text.slice(0, start + README_START.length)}\n${markdownReport(run)}${text.slice(end)}`)
}
