// The PNG signature and IHDR checks the master runs before it accepts an upload.
import { describe, expect, test } from 'bun:test'
import { crc32, hasPngSignature, PNG_SIGNATURE, parsePngHeader } from '../../src/shared/png-header.ts'

/** A signature and an IHDR chunk with the given fields and a correct CRC (unless `crc` is given). */
function header(width: number, height: number, depth = 8, colour = 6, extra: { interlace?: number; crc?: number } = {}): Uint8Array {
  const chunk = new Uint8Array(25)
  const view = new DataView(chunk.buffer)
  view.setUint32(0, 13)
  chunk.set([0x49, 0x48, 0x44, 0x52], 4)
  view.setUint32(8, width)
  view.setUint32(12, height)
  chunk.set([depth, colour, 0, 0, extra.interlace ?? 0], 16)
  view.setUint32(21, extra.crc ?? crc32(chunk.subarray(4, 21)))
  return new Uint8Array([...PNG_SIGNATURE, ...chunk])
}

describe('png header', () => {
  test('crc32 matches the reference value of "IEND"', () => {
    expect(crc32(new TextEncoder().encode('IEND'))).toBe(0xae426082)
  })

  test('reads width, height, depth, colour type and interlacing', () => {
    expect(parsePngHeader(header(640, 480, 16, 2, { interlace: 1 }))).toEqual({
      header: { width: 640, height: 480, bitDepth: 16, colorType: 2, interlaced: true },
    })
  })

  test.each([
    ['no signature', new TextEncoder().encode('GIF89a not a png at all, really'), 'no PNG signature'],
    ['a truncated header', header(1, 1).subarray(0, 20), 'ends before'],
    ['a bad CRC', header(1, 1, 8, 6, { crc: 1 }), 'bad CRC'],
    ['zero width', header(0, 1), 'invalid size'],
    ['a width over 2^31-1', header(0x80000000, 1), 'invalid size'],
    ['RGB at 4 bits', header(1, 1, 4, 2), 'not valid'],
    ['palette at 16 bits', header(1, 1, 16, 3), 'not valid'],
    ['colour type 5', header(1, 1, 8, 5), 'not valid'],
    ['interlace method 2', header(1, 1, 8, 6, { interlace: 2 }), 'unknown'],
  ])('refuses %s', (_what, bytes, reason) => {
    const parsed = parsePngHeader(bytes)
    expect('problem' in parsed && parsed.problem).toContain(reason)
  })

  test('a huge declared size is still a valid header (the worker refuses it by PIXMILL_MAX_PIXELS)', () => {
    expect(parsePngHeader(header(100_000, 100_000))).toMatchObject({ header: { width: 100_000, height: 100_000 } })
  })

  test('hasPngSignature needs all eight bytes', () => {
    expect(hasPngSignature(PNG_SIGNATURE)).toBe(true)
    expect(hasPngSignature(PNG_SIGNATURE.subarray(0, 7))).toBe(false)
  })
})
