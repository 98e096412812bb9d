// Keeping a streaming role flat in memory while request bodies pass through it.

/**
 * Bun hands each request-body chunk to JavaScript as a fresh buffer, and the collector frees them late: a 100 MiB
 * upload to the storage process grew it by 43-58 MiB with nothing done, by 17-24 MiB with a full collection after
 * every 8 MiB written (16 MiB: 24-27; 32 MiB: 30-37), at the price of about 0.1 s per 100 MiB (190 ms -> 290 ms).
 * Counted across all bodies of the process, so the cost follows the bytes, not the number of uploads.
 */
const COLLECT_EVERY_BYTES = 8 * 1024 * 1024
let passedSinceCollect = 0

/** Counts `bytes` of body passed on (written to disk or sent to S3); collects fully every 8 MiB. */
export function relieveMemory(bytes: number): void {
  passedSinceCollect += bytes
  if (passedSinceCollect < COLLECT_EVERY_BYTES) return
  passedSinceCollect = 0
  Bun.gc(true)
}
