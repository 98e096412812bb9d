// `pixmill process`: every PNG of some files and folders uploaded, waited for and downloaded, a few at a time.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { type Api, Refused } from './api.ts'
import { loadManifest, type ManifestEntry, manifestWriter } from './manifest.ts'
import type { BatchCounts, ProgressView } from './progress.ts'

export interface ProcessOptions {
  readonly paths: readonly string[]
  readonly out: string
  /** Uploads at once. */
  readonly concurrency: number
  /** Folders with their subfolders (kept in the output); otherwise their own PNGs only. */
  readonly recursive: boolean
  /** Replace results already in the output folder; otherwise such a file is skipped. */
  readonly overwrite: boolean
  /** Take up the manifest of an earlier run: skip what finished, wait for what was uploaded. */
  readonly resume: boolean
}

export interface ProcessResult {
  readonly counts: BatchCounts
  /** Every file that did not succeed, with the reason. */
  readonly failures: ReadonlyArray<{ readonly name: string; readonly reason: string }>
  /** Stopped before the end (Ctrl-C): what was left, for `--resume`. */
  readonly interrupted?: { readonly uploaded: number; readonly notStarted: number }
}

/** A problem with the command line: exit status 2. */
export class UsageProblem extends Error {
  override name = 'UsageProblem'
}

interface Input {
  readonly path: string
  /** Where its result goes, relative to the output folder. */
  readonly name: string
  readonly size: number
  readonly mtimeMs: number
}

const isPng = (name: string) => name.toLowerCase().endsWith('.png')

/** The PNGs named by `paths`: files as given, folders' PNGs (their subfolders' too with `recursive`). */
export function collectInputs(paths: readonly string[], recursive: boolean): Input[] {
  const inputs: Input[] = []
  for (const path of paths) {
    const info = statSync(path, { throwIfNoEntry: false })
    if (!info) throw new UsageProblem(`${path}: no such file or folder`)
    if (info.isFile()) {
      inputs.push({ path, name: basename(path), size: info.size, mtimeMs: info.mtimeMs })
      continue
    }
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const full = join(dir, entry.name)
        if (entry.isDirectory() && recursive) walk(full)
        else if (entry.isFile() && isPng(entry.name)) {
          const stats = statSync(full)
          inputs.push({ path: full, name: relative(path, full), size: stats.size, mtimeMs: stats.mtimeMs })
        }
      }
    }
    walk(path)
  }
  const seen = new Map<string, string>()
  for (const input of inputs) {
    const other = seen.get(input.name)
    if (other) throw new UsageProblem(`${other} and ${input.path} would both be written as ${input.name}`)
    seen.set(input.name, input.path)
  }
  return inputs
}

/** A counting semaphore. */
function slots(size: number) {
  let free = size
  const queue: Array<() => void> = []
  return {
    async take(): Promise<void> {
      if (free > 0) return void free--
      await new Promise<void>((resolve) => queue.push(resolve))
    },
    give(): void {
      const next = queue.shift()
      if (next) next()
      else free++
    },
  }
}

export async function processFiles(api: Api, options: ProcessOptions, view: ProgressView, signal: AbortSignal): Promise<ProcessResult> {
  const inputs = collectInputs(options.paths, options.recursive)
  mkdirSync(options.out, { recursive: true })
  const earlier = options.resume ? await loadManifest(options.out) : undefined
  const resumable = earlier?.master === api.master ? earlier.entries : {}
  if (earlier && earlier.master !== api.master) view.note(`the manifest names another master (${earlier.master}): starting afresh`)
  const manifest = manifestWriter(options.out, { master: api.master, entries: {} })
  const counts = { total: inputs.length, uploaded: 0, processing: 0, done: 0, failed: 0, skipped: 0 }
  const failures: Array<{ name: string; reason: string }> = []
  const uploads = slots(options.concurrency)
  // Tasks uploaded and not yet downloaded, each waiting on the master: bounded, so that a large batch does not open
  // a connection per file at once.
  const outstanding = slots(options.concurrency * 8)
  const show = () => view.batch({ ...counts })
  let notStarted = 0
  let uploadedLeft = 0

  async function run(input: Input): Promise<void> {
    const dest = join(options.out, input.name)
    const same = (entry: ManifestEntry | undefined) => entry && entry.size === input.size && entry.mtimeMs === input.mtimeMs
    const before = resumable[input.name]
    if (same(before) && before!.state === 'done' && existsSync(dest)) {
      counts.skipped++
      manifest.set(input.name, before!)
      view.note(`already done ${input.name}`)
      return show()
    }
    if (existsSync(dest) && !options.overwrite && !(same(before) && before!.state === 'uploaded')) {
      counts.skipped++
      view.note(`skipped ${input.name}: ${dest} exists (--overwrite replaces it)`)
      return show()
    }
    const entry = (state: ManifestEntry['state'], extra: Partial<ManifestEntry> = {}) =>
      manifest.set(input.name, { state, size: input.size, mtimeMs: input.mtimeMs, ...extra })
    await outstanding.take()
    let id = same(before) && before!.state === 'uploaded' ? before!.id : undefined
    // The task key of a private result: kept in the manifest with the id, so that --resume can still read the task.
    let key = id === undefined ? undefined : before!.key
    try {
      if (signal.aborted) {
        if (id === undefined) notStarted++
        else uploadedLeft++
        return
      }
      if (id === undefined) {
        await uploads.take()
        try {
          if (signal.aborted) return void notStarted++
          view.file(input.name, 'uploading', 0)
          const uploaded = await api.upload(input.path, (sent) => view.file(input.name, 'uploading', input.size ? sent / input.size : 1), signal)
          id = uploaded.id
          key = uploaded.key
        } finally {
          uploads.give()
        }
        entry('uploaded', { id, key })
        counts.uploaded++
      } else view.note(`resuming ${input.name} (task ${id})`)
      counts.processing++
      show()
      view.file(input.name, 'processing')
      let task: Awaited<ReturnType<typeof api.waitEnded>>
      try {
        task = await api.waitEnded(id, signal, undefined, key)
      } finally {
        counts.processing--
      }
      if (task.state !== 2) throw new Error(`the image could not be processed: ${task.error ?? 'no reason given'}`)
      view.file(input.name, 'downloading')
      mkdirSync(dirname(dest), { recursive: true })
      await api.download(id, dest, signal, key)
      entry('done', { id, key })
      counts.done++
      view.settled(input.name, { done: true, path: dest })
    } catch (error) {
      if (signal.aborted) {
        if (id === undefined) notStarted++
        else uploadedLeft++
        return
      }
      const reason = error instanceof Refused ? `refused: ${error.message}` : (error as Error).message
      entry(error instanceof Refused ? 'refused' : 'failed', { id, key, error: reason })
      counts.failed++
      failures.push({ name: input.name, reason })
      view.settled(input.name, { done: false, reason })
    } finally {
      outstanding.give()
      show()
    }
  }

  show()
  await Promise.all(inputs.map(run))
  manifest.flush()
  view.stop()
  return {
    counts: { ...counts },
    failures,
    ...(signal.aborted ? { interrupted: { uploaded: uploadedLeft, notStarted } } : {}),
  }
}
