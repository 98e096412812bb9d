// A raw TCP client, for requests sent byte by byte and cut off midway.

export interface RawClient {
  write(bytes: string | Uint8Array): void
  /** Hangs up, as a client that goes away. */
  end(): void
  /** Resolves when the server closes the connection, with what it sent. */
  readonly closed: Promise<{ text: string; afterMs: number }>
}

/** A raw TCP client, so that a test can send a request byte by byte and see when the server hangs up. */
export async function rawClient(address: string): Promise<RawClient> {
  const [hostname, port] = address.split(':')
  const started = performance.now()
  let received = ''
  let done!: (value: { text: string; afterMs: number }) => void
  const closed = new Promise<{ text: string; afterMs: number }>((resolve) => (done = resolve))
  const socket = await Bun.connect({
    hostname: hostname!,
    port: Number(port),
    socket: {
      data(_socket, data) {
        received += new TextDecoder().decode(data)
      },
      close() {
        done({ text: received, afterMs: performance.now() - started })
      },
      error() {
        done({ text: received, afterMs: performance.now() - started })
      },
    },
  })
  return { write: (bytes) => void socket.write(bytes), end: () => socket.end(), closed }
}
