// A small PNG encoder for opaque 8-bit RGB (one filter for every row, then Bun's libdeflate): a candidate in codecs.ts.

export interface EncodeOptions {
  readonly filter: 'none' | 'sub' | 'up' | 'paeth'
  /** libdeflate level, 1-12. */
  readonly level: number
}

const FILTER_TYPE = { none: 0, sub: 1, up: 2, paeth: 4 } as const
const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, data.length)
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i)
  out.set(data, 8)
  view.setUint32(8 + data.length, Bun.hash.crc32(out.subarray(4, 8 + data.length)))
  return out
}

/** The rows of `rgb`, each behind its filter byte, filtered with `filter` (bytes per pixel: 3). */
function filterRows(rgb: Uint8Array, width: number, height: number, filter: EncodeOptions['filter']): Uint8Array<ArrayBuffer> {
  const stride = width * 3
  const out = new Uint8Array(height * (stride + 1))
  const type = FILTER_TYPE[filter]
  for (let y = 0; y < height; y++) {
    const row = y * stride
    const at = y * (stride + 1)
    out[at] = type
    const o = at + 1
    if (type === 0 || (type === 2 && y === 0)) {
      out.set(rgb.subarray(row, row + stride), o)
      if (type === 2) out[at] = 0
      continue
    }
    if (type === 1) {
      for (let x = 0; x < 3; x++) out[o + x] = rgb[row + x]!
      for (let x = 3; x < stride; x++) out[o + x] = (rgb[row + x]! - rgb[row + x - 3]!) & 0xff
    } else if (type === 2) {
      const up = row - stride
      for (let x = 0; x < stride; x++) out[o + x] = (rgb[row + x]! - rgb[up + x]!) & 0xff
    } else {
      const up = row - stride
      for (let x = 0; x < stride; x++) {
        const a = x >= 3 ? rgb[row + x - 3]! : 0
        const b = y > 0 ? rgb[up + x]! : 0
        const c = x >= 3 && y > 0 ? rgb[up + x - 3]! : 0
        const p = a + b - c
        const pa = Math.abs(p - a)
        const pb = Math.abs(p - b)
        const pc = Math.abs(p - c)
        out[o + x] = (rgb[row + x]! - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff
      }
    }
  }
  return out
}

/** An 8-bit RGB PNG (colour type 2) of `rgb` (`width * height * 3` bytes). */
export function encodePng(rgb: Uint8Array, width: number, height: number, options: EncodeOptions): Uint8Array {
  const filtered = filterRows(rgb, width, height, options.filter)
  const raw = Bun.deflateSync(filtered, { library: 'libdeflate', level: options.level } as Parameters<typeof Bun.deflateSync>[1])
  // A zlib stream around libdeflate's raw deflate: header (32 K window, fastest), data, Adler-32 of the input.
  const zlib = new Uint8Array(raw.length + 6)
  zlib[0] = 0x78
  zlib[1] = 0x01
  zlib.set(raw, 2)
  new DataView(zlib.buffer).setUint32(raw.length + 2, Bun.hash.adler32(filtered))
  const ihdr = new Uint8Array(13)
  const view = new DataView(ihdr.buffer)
  view.setUint32(0, width)
  view.setUint32(4, height)
  ihdr.set([8, 2, 0, 0, 0], 8)
  const parts = [Uint8Array.from(SIGNATURE), chunk('IHDR', ihdr), chunk('IDAT', zlib), chunk('IEND', new Uint8Array(0))]
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part, at)
    at += part.length
  }
  return out
}
