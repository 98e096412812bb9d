// Resident memory of a process, read from /proc, sampled while something runs.
import { readFileSync } from 'node:fs'

/** VmRSS of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  if (!match) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/** Runs `work` while sampling the RSS of each pid every 20 ms; returns the peak growth over the start, per pid. */
export async function peakRssGrowth<T>(pids: readonly number[], work: () => Promise<T>): Promise<{ result: T; growth: number[] }> {
  const base = pids.map(rssBytes)
  const peak = [...base]
  const sample = () => {
    for (const [i, pid] of pids.entries()) peak[i] = Math.max(peak[i]!, rssBytes(pid))
  }
  const timer = setInterval(sample, 20)
  try {
    const result = await work()
    sample()
    return { result, growth: peak.map((p, i) => p - base[i]!) }
  } finally {
    clearInterval(timer)
  }
}

/** A body of `total` bytes that starts with `head`, produced chunk by chunk (never held whole). */
export function generatedBody(head: Uint8Array, total: number, chunkSize = 256 * 1024): ReadableStream<Uint8Array> {
  let sent = 0
  const filler = new Uint8Array(chunkSize).fill(0x5a)
  return new ReadableStream({
    pull(controller) {
      if (sent === 0) {
        controller.enqueue(head)
        sent = head.byteLength
        return
      }
      if (sent >= total) return controller.close()
      const n = Math.min(chunkSize, total - sent)
      controller.enqueue(n === chunkSize ? filler : filler.subarray(0, n))
      sent += n
    },
  })
}
