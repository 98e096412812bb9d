// The codec limit: decode, swap and encode PNGs with the worker's own image work, N loops in one process, no HTTP.
// `raw-work.ts <threads> [--anchor] <png>...` prints {images, seconds, imagesPerSecond, p50Ms, p99Ms} as JSON. With
// --anchor the encoder is the one of 2026-11-30, kept as a fixed point: sharp, RGBA, level 2, adaptive filtering.
import { readFileSync } from 'node:fs'
import sharp from 'sharp'
import { decodeSwapped, type ImageWorkOptions, swapRedGreen } from '../../src/roles/worker/image-work.ts'
import { loadSettings } from '../../src/shared/config.ts'
import { percentile } from './stats.ts'

const args = process.argv.slice(2)
const anchor = args.includes('--anchor')
const [threadsText, ...files] = args.filter((arg) => arg !== '--anchor')
const threads = Number(threadsText)
if (!Number.isInteger(threads) || threads < 1 || files.length === 0) {
  console.error('usage: raw-work.ts <threads> [--anchor] <png>...')
  process.exit(2)
}
// The same options the worker passes (its pixel limit and encoder; the time limit only matters for a hung decode).
const settings = loadSettings()
const options: ImageWorkOptions = { maxPixels: settings.maxPixels, effort: settings.pngEffort }
const work = anchor
  ? async (png: Uint8Array) => {
      const { rgba, width, height } = await decodeSwapped(png, options)
      return sharp(rgba, { raw: { width, height, channels: 4 } })
        .png({ compressionLevel: 2, adaptiveFiltering: true })
        .toBuffer()
    }
  : (png: Uint8Array) => swapRedGreen(png, options)
const images = files.map((file) => new Uint8Array(readFileSync(file)))
// Every image once first, unmeasured, as the system gets a warm-up batch: sharp's start-up, the JIT and the first
// use of each page of the allocator's memory are not the work.
for (const image of images) await work(image)

const times: number[] = []
let next = 0
const started = performance.now()
await Promise.all(
  Array.from({ length: threads }, async () => {
    while (next < images.length) {
      const image = images[next++]!
      const t0 = performance.now()
      await work(image)
      times.push(performance.now() - t0)
    }
  }),
)
const seconds = (performance.now() - started) / 1000
console.log(
  JSON.stringify({ images: images.length, seconds, imagesPerSecond: images.length / seconds, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) }),
)
