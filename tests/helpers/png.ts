// A small PNG encoder for test fixtures (every colour type and bit depth, tRNS, Adam7, all filters), ported from pngkit.py.
import { crc32, deflateSync } from 'node:zlib'

export type ColorType = 0 | 2 | 3 | 4 | 6
/** Samples per pixel for each colour type. */
export const CHANNELS: Record<ColorType, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }
export const VALID_DEPTHS: Record<ColorType, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] }
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

/** Bytes over a plain ArrayBuffer, which fetch bodies and sharp accept as they are. */
export type Bytes = Uint8Array<ArrayBuffer>

/** A pixel as the file stores it: samples in the file's own bit depth; for colour type 3, `[index]`. */
export type Pixel = readonly number[]

export interface EncodeOptions {
  readonly interlace?: boolean
  readonly palette?: readonly (readonly [number, number, number])[]
  /** Raw tRNS chunk data. */
  readonly trns?: Uint8Array
  /** A fixed filter type 0-4, or 'cycle' (row n uses filter n % 5). Default 'cycle'. */
  readonly filter?: number | 'cycle'
  /** Split the compressed data into IDAT chunks of this many bytes. */
  readonly idatSize?: number
  readonly extraBefore?: readonly (readonly [string, Uint8Array])[]
}

export function chunk(type: string, data: Uint8Array): Bytes {
  const out = new Uint8Array(12 + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, data.length)
  out.set(new TextEncoder().encode(type), 4)
  out.set(data, 8)
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)))
  return out
}

export function concat(parts: readonly Uint8Array[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}

export function ihdrChunk(width: number, height: number, depth: number, colorType: number, interlace = 0, compression = 0, filter = 0): Bytes {
  const data = new Uint8Array(13)
  const view = new DataView(data.buffer)
  view.setUint32(0, width)
  view.setUint32(4, height)
  data.set([depth, colorType, compression, filter, interlace], 8)
  return chunk('IHDR', data)
}

export const signature = (): Bytes => Uint8Array.from(SIGNATURE)

/** Packs one row of samples at `depth` bits (big-endian for 16, MSB-first for 1/2/4). */
function pack(samples: readonly number[], depth: number): number[] {
  if (depth === 8) return [...samples]
  if (depth === 16) return samples.flatMap((s) => [s >> 8, s & 0xff])
  const perByte = 8 / depth
  const out: number[] = []
  for (let i = 0; i < samples.length; i += perByte) {
    let byte = 0
    for (let k = 0; k < perByte; k++) byte = (byte << depth) | (samples[i + k] ?? 0)
    out.push(byte)
  }
  return out
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)]
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}

function filterRow(type: number, row: number[], prev: number[] | undefined, bpp: number): number[] {
  return row.map((x, i) => {
    const a = i >= bpp ? row[i - bpp]! : 0
    const b = prev?.[i] ?? 0
    const c = prev && i >= bpp ? prev[i - bpp]! : 0
    const predicted = [0, a, b, (a + b) >> 1, paeth(a, b, c)][type]!
    return (x - predicted) & 0xff
  })
}

function scanlines(rows: Pixel[][], depth: number, channels: number, filter: number | 'cycle', counter: { n: number }): number[] {
  const bpp = Math.max(1, (channels * depth) / 8)
  const out: number[] = []
  let prev: number[] | undefined
  for (const row of rows) {
    const packed = pack(row.flat(), depth)
    const type = filter === 'cycle' ? counter.n % 5 : filter
    counter.n++
    out.push(type, ...filterRow(type, packed, prev, bpp))
    prev = packed
  }
  return out
}

/** Encodes `pixels[y][x]` as a PNG of the given colour type and bit depth. */
export function encodePng(width: number, height: number, colorType: ColorType, depth: number, pixels: Pixel[][], options: EncodeOptions = {}): Bytes {
  const channels = CHANNELS[colorType]
  const filter = options.filter ?? 'cycle'
  const counter = { n: 0 }
  let raw: number[]
  if (!options.interlace) raw = scanlines(pixels, depth, channels, filter, counter)
  else {
    raw = []
    for (const [x0, y0, dx, dy] of ADAM7) {
      const sub: Pixel[][] = []
      for (let y = y0; y < height; y += dy) {
        const row: Pixel[] = []
        for (let x = x0; x < width; x += dx) row.push(pixels[y]![x]!)
        sub.push(row)
      }
      if (sub.length && sub[0]!.length) raw.push(...scanlines(sub, depth, channels, filter, counter))
    }
  }
  const compressed = deflateSync(Uint8Array.from(raw))
  const parts = [signature(), ihdrChunk(width, height, depth, colorType, options.interlace ? 1 : 0)]
  for (const [type, data] of options.extraBefore ?? []) parts.push(chunk(type, data))
  if (options.palette) parts.push(chunk('PLTE', Uint8Array.from(options.palette.flat())))
  if (options.trns) parts.push(chunk('tRNS', options.trns))
  const step = options.idatSize ?? Math.max(compressed.length, 1)
  for (let i = 0; i < Math.max(compressed.length, 1); i += step) parts.push(chunk('IDAT', compressed.subarray(i, i + step)))
  parts.push(chunk('IEND', new Uint8Array(0)))
  return concat(parts)
}

/** A 2x1 RGB PNG for tests that need any valid upload, and what the worker makes of it (red and green swapped). */
export const TINY_PNG = encodePng(2, 1, 2, 8, [
  [
    [10, 20, 30],
    [40, 50, 60],
  ],
])
export const TINY_PNG_SWAPPED = encodePng(2, 1, 2, 8, [
  [
    [20, 10, 30],
    [50, 40, 60],
  ],
])
