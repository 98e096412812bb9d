// Request bodies as streams: peek at the first bytes, count the rest against a limit, never buffer the whole.
import { BadRequest, PayloadTooLarge } from './errors.ts'

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
  /** Why the stream ended early, if it did: the limit, or the client going away. */
  failure(): 'too-large' | 'source-failed' | undefined
}

/** Reads the first `n` bytes of `body` (a chunk or two), and gives back a stream of the whole body counted against `limit`. */
export async function peekBody(body: ReadableStream<Uint8Array>, n: number, limit: number): Promise<PeekedBody> {
  const reader = body.getReader()
  const buffered: Uint8Array[] = []
  let total = 0
  let ended = false
  while (total < n) {
    const { done, value } = await reader.read()
    if (done) {
      ended = true
      break
    }
    buffered.push(value)
    total += value.byteLength
  }
  if (total > limit) {
    await reader.cancel().catch(() => {})
    throw new PayloadTooLarge(limit)
  }
  const head = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered)
  let failure: 'too-large' | 'source-failed' | undefined
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
        failure = 'source-failed'
        controller.error(error)
        return
      }
      if (next.done) return controller.close()
      seen += next.value.byteLength
      if (seen > limit) {
        failure = 'too-large'
        await reader.cancel().catch(() => {})
        return controller.error(new PayloadTooLarge(limit))
      }
      controller.enqueue(next.value)
    },
    cancel(reason) {
      return reader.cancel(reason)
    },
  })
  return { head, stream, failure: () => failure }
}
