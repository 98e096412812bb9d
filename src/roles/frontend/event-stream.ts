// A server-sent event stream: a retry hint, a heartbeat so that proxies and Bun keep it open, a clean end either way.

/** Below Bun's 10 s idle time-out, in case the per-request time-out cannot be lifted. */
const HEARTBEAT_MS = 8000

/** One frame: `event: <name>` and its data as JSON. */
export function sseFrame(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`
}

export interface EventStreamOptions {
  readonly request: Request
  /** Bun's server, whose idle time-out is lifted for this request. */
  readonly server?: { timeout(request: Request, seconds: number): void } | null
  /**
   * Starts sending: `write` takes frames (sseFrame), `end` closes the stream from the server's side. Returns what stops
   * the sending, called once however the stream ends (the client gone, `end`, the frontend stopping).
   */
  readonly start: (write: (frame: string) => void, end: () => void) => () => void
  /** Told when the stream opens and when it closes, for the open-streams gauge. */
  readonly opened?: () => void
  readonly closed?: () => void
}

/** The Response of an event stream that runs until the client leaves or `end` is called. */
export function eventStream({ request, server, start, opened, closed }: EventStreamOptions): Response {
  // A stream is quiet for long stretches; Bun would cut it after its idle time-out.
  server?.timeout(request, 0)
  const encoder = new TextEncoder()
  let stop = () => {}
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let stopped = false
      let heartbeat: ReturnType<typeof setInterval> | undefined
      let unsubscribe = () => {}
      const write = (text: string) => {
        if (stopped) return
        try {
          controller.enqueue(encoder.encode(text))
        } catch {
          stop()
        }
      }
      stop = () => {
        if (stopped) return
        stopped = true
        unsubscribe()
        clearInterval(heartbeat)
        request.signal.removeEventListener('abort', stop)
        closed?.()
        try {
          controller.close()
        } catch {
          // already closed by the client going away
        }
      }
      opened?.()
      write('retry: 3000\n\n')
      heartbeat = setInterval(() => write(': keep-alive\n\n'), HEARTBEAT_MS)
      unsubscribe = start(write, () => stop())
      if (stopped) unsubscribe()
      request.signal.addEventListener('abort', stop, { once: true })
    },
    cancel() {
      stop()
    },
  })
  return new Response(body, { headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' } })
}
