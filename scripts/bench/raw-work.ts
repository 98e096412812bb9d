// The codec limit: decode, swap and encode PNGs with the worker's own swapRedGreen, N loops in one process, no HTTP.
// `raw-work.ts <threads> <png>...` prints {images, seconds, imagesPerSecond, p50Ms, p99Ms} as JSON.
import { readFileSync } from 'node:fs'
import { swapRedGreen } from '../../src/roles/worker/image-work.ts'
import { loadSettings } from '../../src/shared/config.ts'
import { percentile } from './stats.ts'

const [threadsText, ...files] = process.argv.slice(2)
const threads = Number(threadsText)
if (!Number.isInteger(threads) || threads < 1 || files.length === 0) {
  console.error('usage: raw-work.ts <threads> <png>...')
  process.exit(2)
}
// The same options the worker passes (its pixel limit; the time limit only matters for a hung decode).
const options = { maxPixels: loadSettings().maxPixels }
const images = files.map((file) => new Uint8Array(readFileSync(file)))
// One image first, as the worker's warm-up upload does: sharp's start-up and the JIT are not the work.
await swapRedGreen(images[0]!, options)

const times: number[] = []
let next = 0
const started = performance.now()
await Promise.all(
  Array.from({ length: threads }, async () => {
    while (next < images.length) {
      const image = images[next++]!
      const t0 = performance.now()
      await swapRedGreen(image, options)
      times.push(performance.now() - t0)
    }
  }),
)
const seconds = (performance.now() - started) / 1000
console.log(JSON.stringify({ images: images.length, seconds, imagesPerSecond: images.length / seconds, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) }))
