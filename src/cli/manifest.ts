// What a `pixmill process` run did to each file, kept in the output folder so that `--resume` can take it up again.
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const MANIFEST_NAME = '.pixmill-manifest.json'

/** One input file: `uploaded` (its task id known, its result not yet here), `done`, `failed` or `refused`. */
export interface ManifestEntry {
  readonly state: 'uploaded' | 'done' | 'failed' | 'refused'
  /** The input as it was uploaded: a changed file is uploaded again. */
  readonly size: number
  readonly mtimeMs: number
  readonly id?: number
  /** The task key of a private result, sent with every call about the task. */
  readonly key?: string
  readonly error?: string
}

export interface Manifest {
  /** The master the tasks were uploaded to: a resume elsewhere starts afresh. */
  readonly master: string
  readonly entries: Record<string, ManifestEntry>
}

/** The manifest of `dir` if there is a readable one. */
export async function loadManifest(dir: string): Promise<Manifest | undefined> {
  const file = Bun.file(join(dir, MANIFEST_NAME))
  if (!(await file.exists())) return undefined
  try {
    const parsed = (await file.json()) as Manifest
    return parsed && typeof parsed.entries === 'object' ? parsed : undefined
  } catch {
    return undefined
  }
}

/**
 * Keeps the manifest of `dir` on disk as entries change: written whole to a temp file and renamed over the old one, at
 * most every `everyMs` and at `flush()`, so that an interrupted run (Ctrl-C, a crash) leaves a whole manifest.
 */
export function manifestWriter(dir: string, manifest: Manifest, everyMs = 500) {
  const entries: Record<string, ManifestEntry> = { ...manifest.entries }
  let timer: ReturnType<typeof setTimeout> | undefined
  const write = () => {
    clearTimeout(timer)
    timer = undefined
    const path = join(dir, MANIFEST_NAME)
    writeFileSync(`${path}.tmp`, `${JSON.stringify({ master: manifest.master, entries }, null, 1)}\n`)
    renameSync(`${path}.tmp`, path)
  }
  return {
    entries,
    set(name: string, entry: ManifestEntry): void {
      entries[name] = entry
      timer ??= setTimeout(write, everyMs)
    },
    flush: write,
  }
}
