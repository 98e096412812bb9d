// Peak RSS of storage and master while a 200 MiB PNG-signed body streams through the master (only for processes we started).
import { readFileSync } from 'node:fs'
import { loadSettings } from '../../src/shared/config.ts'
import { PNG_SIGNATURE } from '../../src/shared/png-header.ts'
import { ihdrChunk } from '../../tests/helpers/png.ts'
import { generatedBody } from '../../tests/helpers/rss.ts'
import type { BenchContext } from './context.ts'
import { gradientNoisePng } from './images.ts'
import { type Figure, figure } from './model.ts'
import { MiB } from './stats.ts'

const UPLOAD_BYTES = 200 * MiB

/** VmRSS (now) and VmHWM (the peak since start) of `pid`, in bytes. */
function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

export async function memoryFigures(ctx: BenchContext): Promise<Figure[]> {
  const storage = ctx.system.pids?.storage
  const master = ctx.system.pids?.master
  if (storage === undefined || master === undefined) throw new Error('the memory figure needs storage and master processes this run started')
  const roles = [
    { id: 'memory.storage', label: 'storage peak RSS', pid: storage },
    { id: 'memory.master', label: 'master peak RSS', pid: master },
  ]
  // One small image first, as any master in service has stored: it passes uploads on unread to a storage that has
  // shown it checks them (createUploadPeers), and the figure is about that steady path, not a master's first upload.
  const first = await fetch(`http://${ctx.system.addresses.master}/new`, { method: 'POST', body: await gradientNoisePng(64, 64, 1) })
  if (first.status !== 200) throw new Error(`POST /new of a small PNG: ${first.status} ${await first.text()}`)
  ctx.ownTasks.add(Number(await first.text()))
  const idle = roles.map((r) => memory(r.pid).rss)
  const peak = [...idle]
  const sample = () => {
    for (const [i, r] of roles.entries()) peak[i] = Math.max(peak[i]!, memory(r.pid).rss)
  }
  // 10 ms: the whole upload takes about a second, and a short spike is what the figure is about.
  const timer = setInterval(sample, 10)
  // A valid signature and IHDR (8000x8000 RGBA) so that the master accepts it; the rest is filler, generated as sent.
  const head = new Uint8Array([...PNG_SIGNATURE, ...ihdrChunk(8000, 8000, 8, 6)])
  const started = performance.now()
  let answer: string
  try {
    const response = await fetch(`http://${ctx.system.addresses.master}/new`, {
      method: 'POST',
      body: generatedBody(head, UPLOAD_BYTES),
      headers: { 'content-type': 'image/png', 'content-length': String(UPLOAD_BYTES) },
    })
    answer = await response.text()
    if (response.status !== 200) throw new Error(`POST /new of 200 MiB: ${response.status} ${answer}`)
  } finally {
    clearInterval(timer)
  }
  sample()
  const seconds = (performance.now() - started) / 1000
  ctx.ownTasks.add(Number(answer))
  ctx.progress(
    `  200 MiB through the master in ${seconds.toFixed(2)} s; peak RSS storage ${(peak[0]! / MiB).toFixed(1)} MiB, master ${(peak[1]! / MiB).toFixed(1)} MiB`,
  )
  return roles.map((r, i) =>
    figure({
      id: r.id,
      label: r.label,
      load: `one ${UPLOAD_BYTES / MiB} MiB upload to master POST /new`,
      value: peak[i]! / MiB,
      unit: 'MiB',
      baseline: { label: 'its RSS just before the upload', value: idle[i]! / MiB, unit: 'MiB' },
      details: {
        ...(r.id === 'memory.storage' ? { cacheBudgetMiB: Number((loadSettings().storageCacheBytes / MiB).toFixed(1)) } : {}),
        growthMiB: Number(((peak[i]! - idle[i]!) / MiB).toFixed(1)),
        lifetimePeakMiB: Number((memory(r.pid).hwm / MiB).toFixed(1)),
        uploadMiBPerSecond: Math.round(UPLOAD_BYTES / MiB / seconds),
      },
    }),
  )
}
