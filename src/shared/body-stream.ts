// Request bodies as streams: peek at the first bytes, count the rest against a limit, never buffer the whole.
import { BadRequest, PayloadTooLarge, RequestTimeout } from './errors.ts'

/** The declared Content-Length, or undefined (chunked); a malformed one is bad input. */
export function declaredLength(request: Request): number | undefined {
  const raw = request.headers.get('content-length')
  if (raw === null) return undefined
  if (!/^[0-9]{1,16}$/.test(raw.trim())) throw new BadRequest('Content-Length is not a number.')
  return Number(raw)
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
 * trickling bytes would otherwise hold the upload open for ever).
 */
export async function peekBody(body: ReadableStream<Uint8Array>, n: number, limit: number, deadlineSeconds?: number): Promise<PeekedBody> {
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
    },
    cancel(reason) {
      clearTimeout(timer)
      return reader.cancel(reason)
    },
  })
  return { head, stream, failure: () => failure }
}
