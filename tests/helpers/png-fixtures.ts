// PNG fixtures of every kind with the result the PROTOCOL rule gives, computed from their own sample values.
import { CHANNELS, type ColorType, type EncodeOptions, encodePng, type Pixel } from './png.ts'

const D16 = 65535 * 257

/** mulberry32: fixtures differ per case but never between runs. */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0
  return (n) => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (((t ^ (t >>> 14)) >>> 0) % n) >>> 0
  }
}

export interface Fixture {
  readonly png: Uint8Array
  readonly width: number
  readonly height: number
  /** The PROTOCOL rule, computed from the samples: 8-bit (G, R, B, 255) composited over black. */
  readonly expected: Uint8Array
}

export interface Spec {
  readonly ct: ColorType
  readonly depth: number
  readonly width: number
  readonly height: number
  readonly seed: number
  readonly interlace?: boolean
  /** Add tRNS: a colour key for grey/RGB (the first pixel's value), alphas 0, 255, 128, ... for a palette. */
  readonly trns?: boolean
  readonly extra?: EncodeOptions
}

/** The rule on the 16-bit scale, where every bit depth is exact: round(C16 * A16 / (65535 * 257)), half up. */
export const over = (c16: number, a16: number) => Math.floor((2 * c16 * a16 + D16) / (2 * D16))

/** A PNG of `spec`'s kind with pixels from its seed, and the result the worker must make of it. */
export function makeFixture(spec: Spec): Fixture {
  const { ct, depth, width, height } = spec
  const next = rng(spec.seed)
  const max = 2 ** depth - 1
  const scale = 65535 / max // exact for 1, 2, 4, 8 and 16 bits
  const palette = ct === 3 ? Array.from({ length: 2 ** depth }, () => [next(256), next(256), next(256)] as [number, number, number]) : undefined
  const pixels: Pixel[][] = []
  for (let y = 0; y < height; y++) {
    const row: Pixel[] = []
    for (let x = 0; x < width; x++) {
      if (ct === 3) row.push([next(2 ** depth)])
      else {
        const px = Array.from({ length: CHANNELS[ct] }, () => next(max + 1))
        // Alpha cycles through the edges as well as random values.
        if (ct === 4 || ct === 6) px[px.length - 1] = [0, max, max >> 1, next(max + 1), max][(x + y) % 5]!
        row.push(px)
      }
    }
    pixels.push(row)
  }
  let trns: Uint8Array | undefined
  let key: Pixel | undefined
  if (spec.trns && ct === 3) trns = Uint8Array.from([0, 255, 128, ...Array.from({ length: 2 ** depth }, () => next(256))].slice(0, Math.max(1, 2 ** depth - 1)))
  if (spec.trns && (ct === 0 || ct === 2)) {
    key = pixels[0]![0]!
    trns = new Uint8Array(key.flatMap((v) => [v >> 8, v & 0xff]))
  }
  const png = encodePng(width, height, ct, depth, pixels, { interlace: spec.interlace, palette, trns, ...spec.extra })
  const expected = new Uint8Array(width * height * 4)
  pixels.flat().forEach((px, i) => {
    let rgba16: number[]
    if (ct === 3) {
      const index = px[0]!
      rgba16 = [...palette![index]!.map((v) => v * 257), trns && index < trns.length ? trns[index]! * 257 : 65535]
    } else {
      const s = px.map((v) => v * scale)
      const colour = ct === 0 || ct === 4 ? [s[0]!, s[0]!, s[0]!] : s.slice(0, 3)
      const keyed = key !== undefined && px.every((v, k) => v === key[k])
      rgba16 = [...colour, ct === 4 || ct === 6 ? s[s.length - 1]! : keyed ? 0 : 65535]
    }
    const [r, g, b, a] = rgba16 as [number, number, number, number]
    expected.set([over(g, a), over(r, a), over(b, a), 255], i * 4)
  })
  return { png, width, height, expected }
}
