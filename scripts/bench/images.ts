// Test images made with sharp: photo-like content (a smooth gradient plus noise) and a 1 MiB PNG for the storage figures.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'

/** xorshift32: the same images in every run, so that runs compare. */
export function random(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296
  }
}

/**
 * An 8-bit RGB PNG of a diagonal colour gradient with ±4 of noise per sample: flat areas compress like a photo's sky,
 * noise like its texture; neither an all-noise nor an all-flat image is what a worker sees. Encoded at sharp's default
 * level, as a camera or an editor would write it.
 */
export async function gradientNoisePng(width: number, height: number, seed: number): Promise<Uint8Array<ArrayBuffer>> {
  const next = random(seed)
  const pixels = new Uint8Array(width * height * 3)
  const clamp = (v: number) => (v < 0 ? 0 : Math.min(v, 255))
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i += 3) {
      const noise = () => (next() - 0.5) * 8
      pixels[i] = clamp((x / width) * 255 + noise())
      pixels[i + 1] = clamp((y / height) * 255 + noise())
      pixels[i + 2] = clamp(((x + y) / (width + height)) * 200 + 40 + noise())
    }
  }
  return new Uint8Array(
    await sharp(pixels, { raw: { width, height, channels: 3 } })
      .png()
      .toBuffer(),
  )
}

/** A PNG of 512x512 RGBA noise: it does not compress, so it is 1 MiB and a few hundred bytes. */
export async function oneMibPng(): Promise<Uint8Array<ArrayBuffer>> {
  const next = random(1)
  const pixels = new Uint8Array(512 * 512 * 4).map(() => (next() * 256) | 0)
  return new Uint8Array(
    await sharp(pixels, { raw: { width: 512, height: 512, channels: 4 } })
      .png({ compressionLevel: 0 })
      .toBuffer(),
  )
}

/** `count` images of `size`x`size` written to `dir`; at most four differ (generating more only costs time), the rest repeat. */
export async function writeImageSet(dir: string, size: number, count: number): Promise<string[]> {
  const distinct = await Promise.all(Array.from({ length: Math.min(count, 4) }, (_, i) => gradientNoisePng(size, size, size * 31 + i + 1)))
  return Array.from({ length: count }, (_, i) => {
    const file = join(dir, `image-${size}-${i}.png`)
    writeFileSync(file, distinct[i % distinct.length]!)
    return file
  })
}
