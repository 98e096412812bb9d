// The ImageStore interface: PNG images by task id and area, whatever keeps them (the file system now, S3 later).
import { BadRequest } from '../../shared/errors.ts'

/** `working`: uploaded, not yet processed; `finished`: processed. */
export const AREAS = ['working', 'finished'] as const
export type Area = (typeof AREAS)[number]

/** An image as it is stored now; its bytes never change (a replacement is a new image). */
export interface StoredImage {
  readonly size: number
  /** A strong entity tag, quoted (`"..."`); a replacement always gets a new one. */
  readonly etag: string
  readonly lastModified: Date
  /**
   * The bytes. A Blob when the store has one that Bun can send without copying (a BunFile goes out with
   * sendfile(2) and gets Range support from Elysia); otherwise a stream that the caller must consume or cancel.
   */
  readonly body: Blob | ReadableStream<Uint8Array>
}

export interface PutOptions {
  /** The largest body accepted; a longer one rejects with PayloadTooLarge and leaves nothing behind. */
  readonly maxBytes: number
}

/** Images and bytes held per area. */
export type StoreStats = Record<Area, { readonly images: number; readonly bytes: number }>

/**
 * PNG bytes by (id, area). Every method checks its key first (BadRequest for anything but a safe non-negative
 * integer id and a known area) so that no input can name a place outside the store.
 */
export interface ImageStore {
  /**
   * Streams `body` in as the image of (id, area) and resolves once it is stored for good. All or nothing: a body
   * that errors, breaks `maxBytes` or cannot be written leaves no trace, and the image held before (if any) stays
   * until the new one is complete; then the new one replaces it atomically. Concurrent puts to one key end with
   * exactly one of the bodies. A failure of the store itself rejects with DependencyUnavailable.
   */
  put(id: number, area: Area, body: ReadableStream<Uint8Array>, options: PutOptions): Promise<{ readonly bytes: number }>
  /** The image of (id, area), or undefined when there is none. Never a partly written one. */
  open(id: number, area: Area): Promise<StoredImage | undefined>
  /**
   * Removes the image of (id, area); idempotent. Resolves to the bytes it held, or undefined when there was none. Once
   * it resolves, no open() finds the image, and a crash afterwards does not bring it back.
   */
  delete(id: number, area: Area): Promise<{ readonly bytes: number } | undefined>
  /**
   * How many images and bytes each area holds, where the store can tell without listing them (the file system keeps a
   * tally; an object store leaves it to the bucket's own metrics and has no `stats`). Cheap: called on every scrape.
   */
  stats?(): Promise<StoreStats>
  /** The disk under the store, where it has one (the file system): bytes free to this process and in all. */
  freeSpace?(): Promise<{ readonly free: number; readonly total: number }>
  /** Whether the store can serve (for the file system: its folders are there). Cheap, never throws. */
  healthy(): Promise<boolean>
  close(): Promise<void>
}

/** Throws BadRequest unless `id` is a safe non-negative integer and `area` a known area; checked before any I/O. */
export function assertImageKey(id: number, area: string): asserts area is Area {
  if (!Number.isSafeInteger(id) || id < 0) throw new BadRequest(`The image id must be a non-negative integer, got ${String(id)}.`)
  if (!(AREAS as readonly string[]).includes(area)) throw new BadRequest(`The area must be one of ${AREAS.join(', ')}, got ${JSON.stringify(area)}.`)
}
