// `bun run scripts/bench/codecs.ts [--quick]`: the candidate PNG encoders of the worker's output, side by side, on the
// bench's images and on photo-like and screenshot-like ones: time per image (one at a time) and size against the one before.
import { CompressionType, FilterType, Transformer } from '@napi-rs/image'
import sharp from 'sharp'
import { gradientNoisePng, random } from './images.ts'
import { encodePng } from './own-png-encoder.ts'
import { percentile } from './stats.ts'

/** Smooth light over the frame, objects with edges, a textured area and sensor noise: what a camera writes. */
function photoLike(width: number, height: number, seed: number): Uint8Array {
  const next = random(seed)
  const rgb = new Uint8Array(width * height * 3)
  const blobs = Array.from({ length: 6 }, () => ({
    x: next() * width,
    y: next() * height,
    r: (0.15 + next() * 0.3) * width,
    c: [next() * 255, next() * 255, next() * 255],
  }))
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v | 0)
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i += 3) {
      let [r, g, b] = [90 + (60 * y) / height, 120 + (40 * x) / width, 160 - (50 * y) / height]
      for (const blob of blobs) {
        const d = Math.hypot(x - blob.x, y - blob.y)
        if (d < blob.r) {
          const k = 0.6 * (1 - d / blob.r) + 0.3
          r = r * (1 - k) + blob.c[0]! * k
          g = g * (1 - k) + blob.c[1]! * k
          b = b * (1 - k) + blob.c[2]! * k
        }
      }
      // Foliage-like texture in the lower third, noise everywhere.
      const texture = y > (2 * height) / 3 ? (next() - 0.5) * 40 : 0
      const noise = () => (next() - 0.5) * 6
      rgb[i] = clamp(r + texture + noise())
      rgb[i + 1] = clamp(g + texture + noise())
      rgb[i + 2] = clamp(b + texture / 2 + noise())
    }
  }
  return rgb
}

/** Flat panels, thin lines and glyph-like marks: what a screenshot is. */
function screenshotLike(width: number, height: number, seed: number): Uint8Array {
  const next = random(seed)
  const rgb = new Uint8Array(width * height * 3).fill(245)
  const fill = (x0: number, y0: number, w: number, h: number, c: readonly number[]) => {
    for (let y = y0; y < Math.min(height, y0 + h); y++) for (let x = x0; x < Math.min(width, x0 + w); x++) rgb.set(c, (y * width + x) * 3)
  }
  fill(0, 0, width, 40, [40, 44, 52])
  fill(0, 40, 220, height - 40, [230, 232, 236])
  for (let line = 0; line < (height - 60) / 18; line++) {
    let x = 240
    const y = 60 + line * 18
    while (x < width - 40 && next() > 0.02) {
      const w = 4 + Math.floor(next() * 6)
      if (next() > 0.15) fill(x, y, w, 10, next() > 0.9 ? [30, 90, 200] : [30, 30, 30])
      x += w + 2
    }
  }
  return rgb
}

const rgbToRgba = (rgb: Uint8Array) => {
  const rgba = new Uint8Array((rgb.length / 3) * 4)
  for (let p = 0, q = 0; p < rgb.length; p += 3, q += 4) {
    rgba[q] = rgb[p]!
    rgba[q + 1] = rgb[p + 1]!
    rgba[q + 2] = rgb[p + 2]!
    rgba[q + 3] = 255
  }
  return rgba
}

interface Pixels {
  readonly name: string
  readonly width: number
  readonly height: number
  readonly rgb: Uint8Array
  readonly rgba: Uint8Array
}

type Encoder = (image: Pixels) => Promise<Uint8Array> | Uint8Array

const napi =
  (compressionType: CompressionType, filterType: FilterType): Encoder =>
  (image) =>
    Transformer.fromRgbaPixels(image.rgba, image.width, image.height).png({ compressionType, filterType })

/** The encoder before 2026-11-30 first: every size is compared with it. */
const ENCODERS: ReadonlyArray<readonly [string, Encoder]> = [
  [
    'sharp RGBA, level 2, adaptive (before)',
    (i) =>
      sharp(i.rgba, { raw: { width: i.width, height: i.height, channels: 4 } })
        .png({ compressionLevel: 2, adaptiveFiltering: true })
        .toBuffer(),
  ],
  [
    'sharp RGB, level 2, adaptive',
    (i) =>
      sharp(i.rgb, { raw: { width: i.width, height: i.height, channels: 3 } })
        .png({ compressionLevel: 2, adaptiveFiltering: true })
        .toBuffer(),
  ],
  [
    'sharp RGB, level 6, adaptive (PIXMILL_PNG_EFFORT=small)',
    (i) =>
      sharp(i.rgb, { raw: { width: i.width, height: i.height, channels: 3 } })
        .png({ compressionLevel: 6, adaptiveFiltering: true })
        .toBuffer(),
  ],
  [
    'sharp RGBA, level 1, no filter',
    (i) =>
      sharp(i.rgba, { raw: { width: i.width, height: i.height, channels: 4 } })
        .png({ compressionLevel: 1, adaptiveFiltering: false })
        .toBuffer(),
  ],
  ['@napi-rs/image RGBA, Fast, no filter', napi(CompressionType.Fast, FilterType.NoFilter)],
  ['@napi-rs/image RGBA, Fast, Sub', napi(CompressionType.Fast, FilterType.Sub)],
  ['@napi-rs/image RGBA, Fast, Up', napi(CompressionType.Fast, FilterType.Up)],
  ['@napi-rs/image RGBA, Fast, Paeth', napi(CompressionType.Fast, FilterType.Paeth)],
  ['@napi-rs/image RGBA, Fast, Adaptive (fast, the default)', napi(CompressionType.Fast, FilterType.Adaptive)],
  ['@napi-rs/image RGBA, Default, Adaptive', napi(CompressionType.Default, FilterType.Adaptive)],
  ['own RGB, Up, libdeflate 1 (JS thread)', (i) => encodePng(i.rgb, i.width, i.height, { filter: 'up', level: 1 })],
  ['own RGB, Paeth, libdeflate 1 (JS thread)', (i) => encodePng(i.rgb, i.width, i.height, { filter: 'paeth', level: 1 })],
  ['own RGB, Paeth, libdeflate 4 (JS thread)', (i) => encodePng(i.rgb, i.width, i.height, { filter: 'paeth', level: 4 })],
]

async function images(quick: boolean): Promise<Pixels[]> {
  const decode = async (name: string, png: Uint8Array) => {
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true })
    const rgb = new Uint8Array(data)
    return { name, width: info.width, height: info.height, rgb, rgba: rgbToRgba(rgb) }
  }
  const raw = (name: string, width: number, height: number, rgb: Uint8Array) => ({ name, width, height, rgb, rgba: rgbToRgba(rgb) })
  const set: Pixels[] = [
    await decode('bench gradient+noise 512x512', await gradientNoisePng(512, 512, 512 * 31 + 1)),
    raw('photo-like 1024x768', 1024, 768, photoLike(1024, 768, 3)),
    raw('screenshot-like 1280x800', 1280, 800, screenshotLike(1280, 800, 5)),
  ]
  if (!quick) {
    set.splice(1, 0, await decode('bench gradient+noise 2048x2048', await gradientNoisePng(2048, 2048, 2048 * 31 + 1)))
    set.push(raw('photo-like 3000x2000', 3000, 2000, photoLike(3000, 2000, 4)))
  }
  return set
}

const quick = process.argv.includes('--quick')
const runs = quick ? 3 : 9
const set = await images(quick)
const rows: string[][] = []
const totals = new Map<string, { ms: number; bytes: number }>()
for (const image of set) {
  let anchor = 0
  for (const [name, encode] of ENCODERS) {
    await encode(image) // warm-up
    const times: number[] = []
    let bytes = 0
    for (let i = 0; i < runs; i++) {
      const t = performance.now()
      bytes = (await encode(image)).byteLength
      times.push(performance.now() - t)
    }
    const ms = percentile(times, 50)
    if (anchor === 0) anchor = bytes
    const total = totals.get(name) ?? { ms: 0, bytes: 0 }
    totals.set(name, { ms: total.ms + ms, bytes: total.bytes + bytes / anchor })
    rows.push([image.name, name, ms.toFixed(1), (bytes / 1024).toFixed(0), `${Math.round((100 * bytes) / anchor)} %`])
  }
}
const widths = [0, 1, 2, 3, 4].map((c) => Math.max(...[['image', 'encoder', 'ms', 'KiB', 'size'], ...rows].map((r) => r[c]!.length)))
const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`
console.log([line(['image', 'encoder', 'ms', 'KiB', 'size']), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'))
console.log(`\nSummed over the ${set.length} images (median of ${runs} runs each; size: mean of the ratios to the first):`)
for (const [name, t] of totals) console.log(`  ${name.padEnd(44)} ${t.ms.toFixed(1).padStart(7)} ms   ${Math.round((100 * t.bytes) / set.length)} %`)
