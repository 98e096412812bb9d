// The worker's image work against the contract's rule, computed here from the fixtures' own sample values.
import { describe, expect, test } from 'bun:test'
import { deflateSync } from 'node:zlib'
import sharp from 'sharp'
import { UnrecoverableImageError } from '../../src/roles/worker/errors.ts'
import { decodeSwapped, encodeSwapped, type PngEffort, swapRedGreen } from '../../src/roles/worker/image-work.ts'
import { type ColorType, chunk, concat, encodePng, ihdrChunk, type Pixel, signature, VALID_DEPTHS } from '../helpers/png.ts'
import { type Fixture, makeFixture, over, rng } from '../helpers/png-fixtures.ts'

const LIMIT = { maxPixels: 1_000_000 }
const NAMES: Record<ColorType, string> = { 0: 'grey', 2: 'RGB', 3: 'palette', 4: 'grey+alpha', 6: 'RGBA' }
/** The data of the first chunk of `type` in `png`. */
function pngChunk(png: Uint8Array, type: string): Uint8Array | undefined {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  for (let at = 8; at + 12 <= png.length; at += 12 + view.getUint32(at)) {
    if (String.fromCharCode(...png.subarray(at + 4, at + 8)) === type) return png.subarray(at + 8, at + 8 + view.getUint32(at))
  }
  return undefined
}

/** The output of `effort`: its IHDR colour type (the protocol allows opaque RGB or RGBA). */
const COLOUR_TYPE: Record<PngEffort, number> = { fast: 6, small: 2 }

async function expectRule(fixture: Fixture, effort: PngEffort = 'fast'): Promise<void> {
  const out = await swapRedGreen(fixture.png, { ...LIMIT, effort })
  // IHDR: same size, 8 bits, RGBA or RGB, not interlaced.
  const view = new DataView(out.buffer, out.byteOffset)
  expect([view.getUint32(16), view.getUint32(20), out[24], out[25], out[28]]).toEqual([fixture.width, fixture.height, 8, COLOUR_TYPE[effort], 0])
  // RGBA as decoded: an RGB output reads with alpha 255, which is what an RGBA output must hold.
  const { data } = await sharp(out).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
  expect(data.equals(Buffer.from(fixture.expected))).toBe(true)
}

async function expectRefused(png: Uint8Array, pattern: RegExp, maxPixels = LIMIT.maxPixels): Promise<void> {
  const error = await swapRedGreen(png, { maxPixels }).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(UnrecoverableImageError)
  expect((error as Error).message).toMatch(pattern)
}

describe('swapRedGreen: every colour type and bit depth, plain and interlaced', () => {
  let seed = 1
  for (const ct of [0, 2, 3, 4, 6] as const) {
    for (const depth of VALID_DEPTHS[ct]) {
      for (const interlace of [false, true]) {
        const spec = { ct, depth, width: 13, height: 7, seed: seed++, interlace }
        test(`${NAMES[ct]} ${depth}-bit${interlace ? ' interlaced' : ''} 13x7 follows the rule exactly`, () => expectRule(makeFixture(spec)))
      }
    }
  }
})

describe('swapRedGreen with PIXMILL_PNG_EFFORT=small: the same pixels as RGB', () => {
  let seed = 400
  for (const ct of [0, 2, 3, 4, 6] as const) {
    const depth = VALID_DEPTHS[ct].at(-1)!
    test(`${NAMES[ct]} ${depth}-bit interlaced 13x7 follows the rule exactly`, () =>
      expectRule(makeFixture({ ct, depth, width: 13, height: 7, seed: seed++, interlace: true }), 'small'))
  }
  test('a larger photo-like image: both encoders give the same pixels, the small one in fewer bytes', async () => {
    const fixture = makeFixture({ ct: 2, depth: 8, width: 300, height: 200, seed: 450 })
    const [fast, small] = await Promise.all([swapRedGreen(fixture.png, LIMIT), swapRedGreen(fixture.png, { ...LIMIT, effort: 'small' })])
    const pixels = async (png: Uint8Array) => (await sharp(png).ensureAlpha(1).raw().toBuffer()).equals(Buffer.from(fixture.expected))
    expect([await pixels(fast), await pixels(small)]).toEqual([true, true])
    expect(small.byteLength).toBeLessThan(fast.byteLength)
  })
})

describe('swapRedGreen: transparency', () => {
  const cases: [ColorType, number][] = [
    [0, 1],
    [0, 2],
    [0, 8],
    [0, 16],
    [2, 8],
    [2, 16],
    [3, 2],
    [3, 4],
    [3, 8],
  ]
  for (const [ct, depth] of cases) {
    test(`${NAMES[ct]} ${depth}-bit with tRNS composites the transparent pixels to black`, () =>
      expectRule(makeFixture({ ct, depth, width: 11, height: 5, seed: 100 + ct * 20 + depth, trns: true })))
  }
  test('grey+alpha and RGBA, 8 and 16 bits, interlaced, odd sizes', async () => {
    for (const [ct, depth, w, h] of [
      [4, 8, 9, 9],
      [4, 16, 5, 3],
      [6, 8, 1, 9],
      [6, 16, 7, 5],
    ] as const) {
      await expectRule(makeFixture({ ct, depth, width: w, height: h, seed: 200 + w, interlace: true }))
    }
  })
  test('16-bit samples round half up at the 8-bit boundaries', async () => {
    // c = 257k + 128 is just below k + 0.5 (stays k); 257k + 129 is above (k + 1); alpha 32768 halves.
    const row: Pixel[] = [
      [257 * 7 + 128, 257 * 7 + 129, 65535, 65535],
      [65535, 0, 257 * 200, 32768],
      [1, 65535, 65534, 1],
      [32896, 32896, 32896, 65535],
    ]
    const png = encodePng(4, 1, 6, 16, [row])
    const expected = row.flatMap(([r, g, b, a]) => [over(g!, a!), over(r!, a!), over(b!, a!), 255])
    expect(expected.slice(0, 2)).toEqual([8, 7])
    await expectRule({ png, width: 4, height: 1, expected: Uint8Array.from(expected) })
  })
})

describe('swapRedGreen: sizes and encodings', () => {
  test('1x1 images of every colour type', async () => {
    for (const [ct, depth] of [
      [0, 1],
      [0, 16],
      [2, 8],
      [3, 1],
      [4, 8],
      [6, 16],
    ] as const) {
      await expectRule(makeFixture({ ct, depth, width: 1, height: 1, seed: 300 + ct, interlace: ct === 0 }))
    }
  })
  test('odd sizes: 3x1 interlaced, 257x3, 9x9 palette interlaced', async () => {
    await expectRule(makeFixture({ ct: 2, depth: 8, width: 3, height: 1, seed: 310, interlace: true }))
    await expectRule(makeFixture({ ct: 2, depth: 8, width: 257, height: 3, seed: 311 }))
    await expectRule(makeFixture({ ct: 3, depth: 2, width: 9, height: 9, seed: 312, interlace: true }))
  })
  test('each filter type, split IDAT chunks and ancillary chunks (an embedded profile is not applied)', async () => {
    for (const filter of [0, 1, 2, 3, 4]) await expectRule(makeFixture({ ct: 2, depth: 8, width: 23, height: 9, seed: 320 + filter, extra: { filter } }))
    await expectRule(makeFixture({ ct: 6, depth: 8, width: 31, height: 17, seed: 330, extra: { idatSize: 11 } }))
    const text = (s: string) => new TextEncoder().encode(s)
    const extraBefore: [string, Uint8Array][] = [
      ['gAMA', Uint8Array.from([0, 0, 0xb1, 0x8f])],
      ['prVt', text('private ancillary chunk, must be ignored')],
    ]
    await expectRule(makeFixture({ ct: 6, depth: 8, width: 19, height: 11, seed: 331, extra: { extraBefore } }))
  })
  test('an embedded ICC profile (Display P3) is not applied: the stored samples count', async () => {
    const withP3 = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#00f' } })
      .withIccProfile('p3')
      .png()
      .toBuffer()
    const iccp = pngChunk(withP3, 'iCCP')
    expect(iccp).toBeDefined()
    for (const ct of [2, 6] as const)
      await expectRule(makeFixture({ ct, depth: 8, width: 9, height: 5, seed: 332 + ct, extra: { extraBefore: [['iCCP', iccp!]] } }))
  })
})

describe('encodeSwapped: off the JS thread', () => {
  test('a 2048x2048 encode spends almost none of its time before it yields (the pixels are not copied on the JS thread)', async () => {
    const side = 2048
    const png = new Uint8Array(
      await sharp({ create: { width: side, height: side, channels: 3, background: { r: 9, g: 99, b: 199 } } })
        .png()
        .toBuffer(),
    )
    const pixels = await decodeSwapped(png, { maxPixels: side * side })
    const started = performance.now()
    const encoding = encodeSwapped(pixels)
    const beforeYield = performance.now() - started
    const out = await encoding
    const whole = performance.now() - started
    // Handed raw pixels, the encoder copied them first on this thread: about three quarters of the whole encode.
    expect(beforeYield / whole).toBeLessThan(0.25)
    const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true })
    expect([info.width, info.height]).toEqual([side, side])
    expect([...data.subarray(0, info.channels)].slice(0, 3)).toEqual([99, 9, 199])
  })
})

describe('swapRedGreen: refusals', () => {
  test('a decompression bomb of a few hundred bytes declaring 100000x100000 is refused from its header', async () => {
    const bomb = concat([signature(), ihdrChunk(100_000, 100_000, 1, 0), chunk('IDAT', deflateSync(new Uint8Array(64))), chunk('IEND', new Uint8Array(0))])
    expect(bomb.length).toBeLessThan(300)
    const started = performance.now()
    await expectRefused(bomb, /100000x100000 pixels, more than the limit of 50000000/, 50_000_000)
    expect(performance.now() - started).toBeLessThan(200)
  })
  test('the pixel limit is inclusive', async () => {
    const fixture = makeFixture({ ct: 2, depth: 8, width: 10, height: 10, seed: 400 })
    await expect(swapRedGreen(fixture.png, { maxPixels: 100 })).resolves.toBeInstanceOf(Uint8Array)
    await expectRefused(fixture.png, /10x10 pixels, more than the limit of 99/, 99)
  })
  test('garbage, an empty body and a JPEG are not decodable PNGs', async () => {
    const next = rng(500)
    await expectRefused(
      Uint8Array.from({ length: 1000 }, () => next(256)),
      /not a decodable PNG/,
    )
    await expectRefused(new Uint8Array(0), /not a decodable PNG/)
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } })
      .jpeg()
      .toBuffer()
    await expectRefused(jpeg, /not a decodable PNG: the body is not a PNG/)
  })
  test('truncated PNGs: cut in the image data, cut before IEND, cut in the header', async () => {
    const { png } = makeFixture({ ct: 2, depth: 8, width: 64, height: 64, seed: 600 })
    await expectRefused(png.subarray(0, png.length >> 1), /does not decode/)
    await expectRefused(png.subarray(0, png.length - 12 - 10), /does not decode/)
    await expectRefused(png.subarray(0, 20), /not a decodable PNG/)
  })
  test('bad CRCs in IHDR and in IDAT, an unknown filter type, a bad bit depth', async () => {
    const { png } = makeFixture({ ct: 2, depth: 8, width: 16, height: 8, seed: 700 })
    const ihdrCrc = png.slice()
    ihdrCrc[32]! ^= 0xff
    await expectRefused(ihdrCrc, /CRC/)
    const idatCrc = png.slice()
    idatCrc[png.length - 12 - 2]! ^= 0xff
    await expectRefused(idatCrc, /does not decode/)
    const rows = concat(Array.from({ length: 8 }, () => Uint8Array.from([7, ...new Uint8Array(48)])))
    await expectRefused(concat([signature(), ihdrChunk(16, 8, 8, 2), chunk('IDAT', deflateSync(rows)), chunk('IEND', new Uint8Array(0))]), /does not decode/)
    await expectRefused(
      concat([signature(), ihdrChunk(16, 8, 3, 0), chunk('IDAT', deflateSync(rows)), chunk('IEND', new Uint8Array(0))]),
      /not a decodable PNG/,
    )
  })
})
