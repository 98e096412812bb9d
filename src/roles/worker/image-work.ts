// The worker's image work: any PNG in, an opaque 8-bit PNG out, composited over black, red and green swapped.
import { CompressionType, FilterType, Transformer } from '@napi-rs/image'
import sharp, { type OutputInfo, type SharpOptions } from 'sharp'
import { parsePngHeader } from '../../shared/png-header.ts'
import { UnrecoverableImageError } from './errors.ts'

// Every image is new to a worker: libvips' operation cache would only hold memory.
sharp.cache(false)

/**
 * How hard the encoder works (PIXMILL_PNG_EFFORT). `fast`: @napi-rs/image's fast deflate with adaptive row filters,
 * RGBA (every alpha 255): several times faster than sharp at level 2, about its size on photos (the README's Codecs). `small`: sharp at level 6 with adaptive filters, RGB: the smallest output, at sharp's cost.
 */
export type PngEffort = 'fast' | 'small'

export interface ImageWorkOptions {
  /** The most pixels (width x height) decoded; more fails the image from its header alone. */
  readonly maxPixels: number
  /** A decode or an encode that runs longer is abandoned (whole seconds, 1-3600). Default 300. */
  readonly timeoutSeconds?: number
  /** Default `fast`. */
  readonly effort?: PngEffort
  /** Runs each stage of the work (`decode`, `encode`), so that the caller can time or trace it. Default: just runs it. */
  readonly stage?: StageRunner
}

/** The stages of one task's work in a worker. */
export type Stage = 'fetch' | 'decode' | 'encode' | 'store' | 'report'

/** Runs `work` as the named stage: the worker's metrics time it, tracing makes a span of it. */
export type StageRunner = <T>(stage: Stage, work: () => Promise<T>) => Promise<T>

/** Runs the stage and nothing else. */
export const untimedStage: StageRunner = (_stage, work) => work()

/** An image decoded, composited over black and swapped: 8-bit RGBA, every alpha 255. */
export interface SwappedPixels {
  /** The pixels, row by row (a view into `framed` when there is one). */
  readonly rgba: Uint8Array
  /**
   * For an image of FRAMED_FROM_PIXELS or more: the same pixels behind a PAM header (the Netpbm format of raw samples),
   * which the encoder reads in libuv's pool. Handed raw pixels (`Transformer.fromRgbaPixels`), it copies them on the JS
   * thread first: 55 ms for 2048x2048 and 0.7 s for 6000x6000, a stall of every other loop, of lease renewals and of
   * the worker's port. Below that size the copy is a few ms and the raw path gives more images per second (the pool,
   * not the JS thread, is what a 2-core machine runs out of), so small images go raw.
   */
  readonly framed?: Uint8Array
  readonly width: number
  readonly height: number
}

/** From this many pixels (2048x2048) an image goes to the encoder framed (see SwappedPixels.framed). */
export const FRAMED_FROM_PIXELS = 2048 * 2048

/** A buffer for `width` x `height` RGBA pixels behind their PAM header, and the view of its pixels. */
export function framedPixels(width: number, height: number): { framed: Uint8Array; rgba: Uint8Array } {
  const header = new TextEncoder().encode(`P7\nWIDTH ${width}\nHEIGHT ${height}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n`)
  const framed = new Uint8Array(header.byteLength + width * height * 4)
  framed.set(header)
  return { framed, rgba: framed.subarray(header.byteLength) }
}

/**
 * round(c * a / 255), half up, for every 8-bit colour `c` and alpha `a`, indexed `(a << 8) | c`.
 * A 64 KiB table beats a division per sample in the pass below.
 */
const OVER_BLACK_8 = (() => {
  const table = new Uint8Array(65536)
  for (let a = 0; a < 256; a++) for (let c = 0; c < 256; c++) table[(a << 8) | c] = Math.floor((2 * c * a + 255) / 510)
  return table
})()

/** c16 * a16 / D16 is a 16-bit colour composited over black on the 8-bit scale (65535 * 257). */
const D16 = 65535 * 257

/** round(c / 257), half up, for every 16-bit sample: opaque pixels, the common case, need no division. */
const SCALE_16_TO_8 = (() => {
  const table = new Uint8Array(65536)
  for (let c = 0; c < 65536; c++) table[c] = Math.floor((2 * c + 257) / 514)
  return table
})()

/**
 * 8-bit RGBA from `src` to `out` (which may be `src`): (R, G, B, A) -> (G*A, R*A, B*A, 255) with each product / 255
 * rounded half up.
 */
export function compositeSwap8(src: Uint8Array, out: Uint8Array = src): void {
  for (let i = 0; i < src.length; i += 4) {
    const r = src[i]!
    const g = src[i + 1]!
    const b = src[i + 2]!
    const a = src[i + 3]!
    if (a === 255) {
      out[i] = g
      out[i + 1] = r
      out[i + 2] = b
      out[i + 3] = 255
      continue
    }
    const row = a << 8
    out[i] = OVER_BLACK_8[row | g]!
    out[i + 1] = OVER_BLACK_8[row | r]!
    out[i + 2] = OVER_BLACK_8[row | b]!
    out[i + 3] = 255
  }
}

/**
 * 16-bit RGBA samples -> 8-bit RGBA in `out`: round(C * A / (65535 * 257)), half up, swapped, opaque.
 * `out` may share memory with the start of `src`: pixel i is read whole before bytes 4i..4i+3 are written, and those
 * bytes belong to pixels already read.
 */
export function compositeSwap16(src: Uint16Array, out: Uint8Array): void {
  // Doubles hold 2 * 65535 * 65535 + D16 exactly, so floor((2ca + D) / 2D) is exact rounding.
  for (let p = 0; p < src.length; p += 4) {
    const r = src[p]!
    const g = src[p + 1]!
    const b = src[p + 2]!
    const a = src[p + 3]!
    if (a === 65535) {
      out[p] = SCALE_16_TO_8[g]!
      out[p + 1] = SCALE_16_TO_8[r]!
      out[p + 2] = SCALE_16_TO_8[b]!
      out[p + 3] = 255
      continue
    }
    out[p] = Math.floor((2 * g * a + D16) / (2 * D16))
    out[p + 1] = Math.floor((2 * r * a + D16) / (2 * D16))
    out[p + 2] = Math.floor((2 * b * a + D16) / (2 * D16))
    out[p + 3] = 255
  }
}

function reason(error: unknown): string {
  return (error as Error)?.message?.replace(/\s+/g, ' ').trim() || 'unknown decoder error'
}

/**
 * Decodes `png` (any colour type, bit depth and interlacing) and composites it over black with red and green swapped.
 * The header is read first, and an image of more than `maxPixels` pixels is refused before any pixel is decoded.
 * Throws UnrecoverableImageError for anything that is not a decodable PNG within the limits. The decode runs in
 * libvips' threads; only the compositing pass runs on the JS thread. libvips' own `flatten` + `recomb` would be slower
 * and is not exact: its flatten truncates, and 16-bit goes to 8 bits by a shift.
 */
export async function decodeSwapped(png: Uint8Array, options: ImageWorkOptions): Promise<SwappedPixels> {
  const { maxPixels } = options
  const seconds = options.timeoutSeconds ?? 300
  const input: SharpOptions = {
    limitInputPixels: maxPixels,
    // A bad CRC in IHDR is only a libpng warning; untrusted input fails on any warning.
    failOn: 'warning',
    // The contract is about the stored samples: no colour management from an embedded profile.
    ignoreIcc: true,
    sequentialRead: true,
  }
  // The header from its 33 bytes, not from libvips: the pixel limit is checked before anything is decoded, and no
  // second pass of libvips over the input is paid for it.
  const parsed = parsePngHeader(png)
  if ('problem' in parsed) throw new UnrecoverableImageError(`not a decodable PNG: ${parsed.problem}`)
  const { width, height } = parsed.header
  if (width * height > maxPixels) {
    throw new UnrecoverableImageError(`the PNG has ${width}x${height} pixels, more than the limit of ${maxPixels}`)
  }
  const sixteen = parsed.header.bitDepth === 16
  let decoded: { data: Buffer; info: OutputInfo }
  try {
    // Grey becomes RGB and an opaque image gets alpha = max natively, so that the pass below sees RGBA only.
    decoded = await sharp(png, input)
      .ensureAlpha(1)
      .toColourspace(sixteen ? 'rgb16' : 'srgb')
      .raw({ depth: sixteen ? 'ushort' : 'uchar' })
      .timeout({ seconds })
      .toBuffer({ resolveWithObject: true })
  } catch (error) {
    throw new UnrecoverableImageError(`the PNG does not decode: ${reason(error)}`, { cause: error })
  }
  const { data, info } = decoded
  if (info.channels !== 4 || info.width !== width || info.height !== height) {
    throw new UnrecoverableImageError(`unexpected decoding: ${info.width}x${info.height}, ${info.channels} channels`)
  }
  const framing = width * height >= FRAMED_FROM_PIXELS ? framedPixels(width, height) : undefined
  if (!sixteen) {
    // In place when it goes raw: no second buffer.
    const rgba = framing?.rgba ?? data
    compositeSwap8(data, rgba)
    return { rgba, framed: framing?.framed, width, height }
  }
  const aligned = data.byteOffset % 2 === 0 ? data : Buffer.from(data)
  const samples = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2)
  // 8-bit RGBA fits in the first half of the 16-bit samples' memory (see compositeSwap16).
  const rgba = framing?.rgba ?? new Uint8Array(aligned.buffer, aligned.byteOffset, width * height * 4)
  compositeSwap16(samples, rgba)
  return { rgba, framed: framing?.framed, width, height }
}

/** Encodes swapped pixels as PNG with `effort` (see PngEffort); fails (UnrecoverableImageError) past the time limit. */
export async function encodeSwapped(pixels: SwappedPixels, effort: PngEffort = 'fast', timeoutSeconds = 300): Promise<Uint8Array<ArrayBuffer>> {
  const { rgba, framed, width, height } = pixels
  try {
    if (effort === 'small') {
      return await sharp(rgba, { raw: { width, height, channels: 4 } })
        .removeAlpha()
        .png({ compressionLevel: 6, adaptiveFiltering: true })
        .timeout({ seconds: timeoutSeconds })
        .toBuffer()
    }
    // Encoded off the JS thread (libuv's pool), as sharp's work is; a large image is read there too.
    const source = framed ? new Transformer(framed) : Transformer.fromRgbaPixels(rgba, width, height)
    const out = await source.png({ compressionType: CompressionType.Fast, filterType: FilterType.Adaptive }, AbortSignal.timeout(timeoutSeconds * 1000))
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength) as Uint8Array<ArrayBuffer>
  } catch (error) {
    // Encoding our own raw pixels only fails on resources or the time limit; the image is still what costs them.
    throw new UnrecoverableImageError(`encoding the result failed: ${reason(error)}`, { cause: error })
  }
}

/** The whole image work of one task: decodeSwapped, then encodeSwapped. */
export async function swapRedGreen(png: Uint8Array, options: ImageWorkOptions): Promise<Uint8Array<ArrayBuffer>> {
  const stage = options.stage ?? untimedStage
  const pixels = await stage('decode', () => decodeSwapped(png, options))
  return stage('encode', () => encodeSwapped(pixels, options.effort, options.timeoutSeconds))
}
