// Reads and checks the start of a PNG (signature and IHDR) without decoding anything.
import { BadRequest, UnsupportedMediaType } from './errors.ts'

export const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** Signature (8) + IHDR length, type, 13 data bytes and CRC. */
export const PNG_HEADER_BYTES = 33

export interface PngHeader {
  readonly width: number
  readonly height: number
  readonly bitDepth: number
  readonly colorType: number
  readonly interlaced: boolean
}

/** Bit depths allowed for each colour type (PNG spec, table 11.1). */
const DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] }

const CRC_TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

/** CRC-32 as PNG chunks use it. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

export function hasPngSignature(bytes: Uint8Array): boolean {
  if (bytes.length < PNG_SIGNATURE.length) return false
  for (let i = 0; i < PNG_SIGNATURE.length; i++) if (bytes[i] !== PNG_SIGNATURE[i]) return false
  return true
}

/** Parses the IHDR that must follow the signature; returns the reason when it is not a valid one. */
export function parsePngHeader(bytes: Uint8Array): { header: PngHeader } | { problem: string } {
  if (!hasPngSignature(bytes)) return { problem: 'the body is not a PNG (no PNG signature)' }
  if (bytes.length < PNG_HEADER_BYTES) return { problem: 'the PNG ends before its IHDR header' }
  const view = new DataView(bytes.buffer, bytes.byteOffset, PNG_HEADER_BYTES)
  const type = String.fromCharCode(...bytes.subarray(12, 16))
  if (view.getUint32(8) !== 13 || type !== 'IHDR') return { problem: 'the PNG does not start with a valid IHDR chunk' }
  if (crc32(bytes.subarray(12, 29)) !== view.getUint32(29)) return { problem: 'the PNG IHDR chunk has a bad CRC' }
  const width = view.getUint32(16)
  const height = view.getUint32(20)
  const [bitDepth, colorType, compression, filter, interlace] = bytes.subarray(24, 29)
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
    return { problem: `the PNG declares an invalid size ${width}x${height}` }
  }
  if (!DEPTHS[colorType!]?.includes(bitDepth!)) return { problem: `the PNG declares colour type ${colorType} with bit depth ${bitDepth}, which is not valid` }
  if (compression !== 0 || filter !== 0 || (interlace !== 0 && interlace !== 1)) {
    return { problem: 'the PNG declares an unknown compression, filter or interlace method' }
  }
  return { header: { width, height, bitDepth: bitDepth!, colorType: colorType!, interlaced: interlace === 1 } }
}

/** 400: a body with the PNG signature whose IHDR is missing or invalid. */
export class InvalidPng extends BadRequest {}

/**
 * The header of an upload whose first bytes (PNG_HEADER_BYTES, or the whole body when shorter) are `head`; throws the
 * answer for anything else: 415 without the PNG signature, 400 for a missing or invalid IHDR. Master and storage
 * answer the same, so that an upload the master passes on unread is refused as if the master had read it.
 */
export function checkPngHead(head: Uint8Array): PngHeader {
  if (!hasPngSignature(head)) {
    const why = head.byteLength < PNG_SIGNATURE.length ? 'it is shorter than the PNG signature' : 'it does not start with the PNG signature'
    throw new UnsupportedMediaType(`The body is not a PNG: ${why}.`)
  }
  const parsed = parsePngHeader(head)
  if ('problem' in parsed) throw new InvalidPng(`Not a valid PNG: ${parsed.problem}.`)
  return parsed.header
}
