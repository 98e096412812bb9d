// The shape of one bench run: each figure beside its baseline from the same run, and the targets as ratios.

/** A measured quantity with its unit, as printed. */
export interface Measure {
  readonly label: string
  readonly value: number
  readonly unit: string
}

export interface Figure {
  /** Stable key (`kv.get`, `e2e.2048.t2`, ...): the test and the README refer to figures by it. */
  readonly id: string
  readonly label: string
  /** How it was loaded: connections, duration, images. */
  readonly load: string
  readonly value: number
  readonly unit: string
  readonly p50Ms?: number
  readonly p99Ms?: number
  readonly mibPerSecond?: number
  /** The limit of this machine for the same work, measured next to the figure. */
  readonly baseline: Measure & { readonly p99Ms?: number; readonly mibPerSecond?: number }
  /** A fixed point of comparison besides the baseline (end to end: the raw sharp loop of 2026-11-30). */
  readonly anchor?: Measure
  /** value / baseline.value. */
  readonly ratio: number
  /** Facts checked or worth knowing beside the number (duplicate claims, RSS growth, ...). */
  readonly details?: Readonly<Record<string, number | string>>
}

export interface Target {
  readonly figure: string
  readonly text: string
  /** The compared quantity: a ratio, or a value in the figure's unit. */
  readonly actual: number
  readonly met: boolean
}

export interface Skipped {
  readonly id: string
  readonly reason: string
}

export interface Machine {
  readonly cores: number
  readonly cpu: string
  readonly memoryGiB: number
  readonly kernel: string
  readonly bun: string
  readonly wrk: string
}

export interface BenchRun {
  readonly date: string
  readonly command: string
  readonly mode: 'full' | 'quick'
  /** `started`: the tool started its own system; otherwise the addresses it was given. */
  readonly system: 'started' | Readonly<Record<string, string>>
  readonly machine: Machine
  readonly seconds: number
  readonly figures: readonly Figure[]
  readonly targets: readonly Target[]
  readonly skipped: readonly Skipped[]
  readonly durationSeconds: number
}

/** A figure from its measure and its baseline; the ratio is derived so that it cannot disagree with them. */
export function figure(fields: Omit<Figure, 'ratio'>): Figure {
  return { ...fields, ratio: fields.baseline.value > 0 ? fields.value / fields.baseline.value : 0 }
}

const percent = (ratio: number) => `${Math.round(ratio * 100)} %`

/** The targets (2 cores, ratios from one run), judged against the figures that were measured. */
export function judgeTargets(figures: readonly Figure[]): Target[] {
  const byId = new Map(figures.map((f) => [f.id, f]))
  const targets: Target[] = []
  const atLeast = (id: string, min: number, what: string) => {
    const f = byId.get(id)
    if (f) targets.push({ figure: id, text: `${f.label} ≥ ${percent(min)} of ${what}: ${percent(f.ratio)}`, actual: f.ratio, met: f.ratio >= min })
  }
  const below = (id: string, max: number, why = '') => {
    const f = byId.get(id)
    if (f) targets.push({ figure: id, text: `${f.label} < ${max} ${f.unit}${why}: ${f.value.toFixed(1)} ${f.unit}`, actual: f.value, met: f.value < max })
  }
  const atMost = (id: string, max: number, what: string) => {
    const f = byId.get(id)
    if (f) targets.push({ figure: id, text: `${f.label} ≤ ${percent(max)} of ${what}: ${percent(f.ratio)}`, actual: f.ratio, met: f.ratio <= max })
  }
  atLeast('kv.get', 0.6, 'the bare Bun.serve constant answer')
  // A finished task stays finished until it is removed: these reads need not cost much more than a bare answer.
  atLeast('database.getById', 0.5, 'the bare Bun.serve constant answer')
  atLeast('master.isReady', 0.5, 'the bare Bun.serve constant answer')
  atLeast('storage.getImage', 1.0, 'nginx sending the same file')
  for (const f of figures) if (f.id.startsWith('e2e.')) atLeast(f.id, 0.8, 'the raw image work with the same threads')
  for (const f of figures) {
    if (!f.anchor) continue
    const times = f.value / f.anchor.value
    targets.push({ figure: `${f.id}.anchor`, text: `${f.label} ≥ 1.5x ${f.anchor.label}: ${times.toFixed(2)}x`, actual: times, met: times >= 1.5 })
  }
  // Flat as the data grows: within 20 % of the same over an empty data folder.
  for (const f of figures) {
    if (!f.id.startsWith('scale.')) continue
    if (f.unit.endsWith('/s')) atLeast(f.id, 0.8, 'the same over an empty data folder')
    else atMost(f.id, 1.2, 'the same over an empty data folder')
  }
  // Storage may hold its hot-image cache on top (PIXMILL_STORAGE_CACHE_BYTES): 64 MiB plus that budget.
  const cacheMiB = Number(byId.get('memory.storage')?.details?.cacheBudgetMiB ?? 0)
  below('memory.storage', 64 + cacheMiB, cacheMiB > 0 ? ` (64 MiB + its ${cacheMiB} MiB cache budget)` : '')
  below('memory.master', 64)
  return targets
}
