// Request bodies as streams: peek at the first bytes, count the rest against a limit, never buffer the whole.
import { BadRequest, PayloadTooLarge, RequestTimeout } from './errors.ts'

/** The declared Content-Length, or undefined (chunked); a malformed one is bad input. */
export function declaredLength(request: Request): number | undefined {
  const raw = request.headers.get('content-length')
  if (raw === null) return undefined
  if (!/^[0-9]{1,16}$/.test(raw.trim())) throw new BadRequest('Content-Length is not a number.')
  return Number(raw)
}

/**
 * The `collectEveryBytes` the master and storage give peekBody for a body of `declared` length: every 2 MiB for a body
 * of 32 MiB or more, or of unknown length; none for smaller ones, which grow a process by no more than its collector
 * lets garbage pile up anyway (about 20 MiB), and would pay 3-7 ms per collection (a 10 MiB image through master and
 * storage cost them about 60 ms more CPU; collecting every 8 MiB of all bodies together, as storage once did, was a
 * sixth of its CPU with many small images). Measured with one 200 MiB upload through the master: without collections
 * the master grew by 17-22 MiB (peak 71-76 MiB) and storage by 12-17 MiB (64-69 MiB); every 3 MiB left the master at
 * 61.7-64.0 MiB and storage at 60.7-65.0 MiB; every 2 MiB, 61.2-61.9 and 60.0-60.9 MiB, the upload taking 1.5 s.
 */
export function collectionPace(declared: number | undefined): number | undefined {
  return declared === undefined || declared >= 32 * 1024 * 1024 ? 2 * 1024 * 1024 : undefined
}

/** A body stream that has been peeked at, and what happened to it as it was read. */
export interface PeekedBody {
  /** At least the first `n` bytes asked for, or the whole body when it is shorter. */
  readonly head: Uint8Array
  /** The whole body again (head included), ending with PayloadTooLarge once it passes the limit. */
  readonly stream: ReadableStream<Uint8Array>
  /** Why the stream ended early, if it did: the limit, the deadline, or the client going away. */
  failure(): 'too-large' | 'too-slow' | 'source-failed' | undefined
}

/**
 * Reads the first `n` bytes of `body` (a chunk or two), and gives back a stream of the whole body counted against
 * `limit`. With `deadlineSeconds`, a body that has not arrived whole by then ends in RequestTimeout (a slow client
 * trickling bytes would otherwise hold the upload open for ever). With `collectEveryBytes`, a full collection runs
 * each time that many more bytes of this body have been passed on: Bun hands each chunk (64 KiB) to JavaScript as a
 * fresh buffer and the collector frees them late, so a big body passed on grows the process by 20 MiB and more. Counted
 * per body: see collectionPace.
 */
export async function peekBody(
  body: ReadableStream<Uint8Array>,
  n: number,
  limit: number,
  deadlineSeconds?: number,
  collectEveryBytes?: number,
): Promise<PeekedBody> {
  const reader = body.getReader()
  let failure: 'too-large' | 'too-slow' | 'source-failed' | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  if (deadlineSeconds !== undefined) {
    timer = setTimeout(() => {
      failure ??= 'too-slow'
      void reader.cancel(new RequestTimeout(deadlineSeconds)).catch(() => {})
    }, deadlineSeconds * 1000)
    timer.unref?.()
  }
  const tooSlow = () => (failure === 'too-slow' ? new RequestTimeout(deadlineSeconds ?? 0) : undefined)
  const buffered: Uint8Array[] = []
  let total = 0
  let ended = false
  while (total < n) {
    const { done, value } = await reader.read().catch((error) => {
      clearTimeout(timer)
      throw tooSlow() ?? error
    })
    if (done) {
      ended = true
      break
    }
    buffered.push(value)
    total += value.byteLength
  }
  if (total > limit) {
    clearTimeout(timer)
    await reader.cancel().catch(() => {})
    throw new PayloadTooLarge(limit)
  }
  const slow = tooSlow()
  if (slow) throw slow
  if (ended) clearTimeout(timer)
  const head = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered)
  let seen = total
  let passedSinceCollect = 0
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of buffered) controller.enqueue(chunk)
      if (ended) controller.close()
    },
    async pull(controller) {
      let next: Awaited<ReturnType<typeof reader.read>>
      try {
        next = await reader.read()
      } catch (error) {
        clearTimeout(timer)
        failure ??= 'source-failed'
        controller.error(tooSlow() ?? error)
        return
      }
      if (next.done) {
        clearTimeout(timer)
        // A reader cancelled by the deadline reads as done: that is no whole body.
        const slowNow = tooSlow()
        return slowNow ? controller.error(slowNow) : controller.close()
      }
      seen += next.value.byteLength
      if (seen > limit) {
        clearTimeout(timer)
        failure = 'too-large'
        await reader.cancel().catch(() => {})
        return controller.error(new PayloadTooLarge(limit))
      }
      controller.enqueue(next.value)
      passedSinceCollect += next.value.byteLength
      if (collectEveryBytes !== undefined && passedSinceCollect >= collectEveryBytes) {
        passedSinceCollect = 0
        Bun.gc(true)
      }
    },
    cancel(reason) {
      clearTimeout(timer)
      return reader.cancel(reason)
    },
  })
  return { head, stream, failure: () => failure }
}
