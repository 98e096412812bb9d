// Client of the storage role: streaming PNG bodies both ways.
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { onPeer, type PeerAddress } from './peer-address.ts'

export type Area = 'working' | 'finished'

export interface StorageClient {
  /** Streams `body` to storage as the image of `id` in `area`; resolves once storage answered `success`. */
  send(id: number, area: Area, body: BodyInit, options?: { contentLength?: number; signal?: AbortSignal }): Promise<void>
  /** Removes the image (`/deleteImage`); succeeds when there is none. NotOffered from a storage of the original protocol. */
  remove(id: number, area: Area): Promise<void>
  /** The image as a streaming response (status 200, `image/png`); NotFound (404) when there is none. */
  get(id: number, area: Area, options?: { signal?: AbortSignal; headers?: Record<string, string> }): Promise<Response>
}

export function createStorageClient(peer: PeerAddress, fetcher: Fetch = peerTransport): StorageClient {
  return {
    async send(id, area, body, options) {
      await onPeer(
        peer,
        async (address) => {
          const headers: Record<string, string> = { 'content-type': 'image/png' }
          if (options?.contentLength !== undefined) headers['content-length'] = String(options.contentLength)
          const response = await callPeer(fetcher, 'storage', address, '/sendImage', {
            method: 'POST',
            query: { id, state: area },
            body,
            headers,
            signal: options?.signal,
            timeoutMs: 300_000,
          })
          await response.text()
        },
        { replayable: !(body instanceof ReadableStream) },
      )
    },
    async remove(id, area) {
      // Idempotent: safe to send again elsewhere.
      await onPeer(
        peer,
        async (address) =>
          (await callPeer(fetcher, 'storage', address, '/deleteImage', { method: 'POST', query: { id, state: area }, timeoutMs: 30_000 })).text(),
        {
          idempotent: true,
        },
      )
    },
    async get(id, area, options) {
      return onPeer(
        peer,
        (address) =>
          callPeer(fetcher, 'storage', address, '/getImage', {
            query: { id, state: area },
            signal: options?.signal,
            headers: options?.headers,
            timeoutMs: 300_000,
          }),
        { idempotent: true },
      )
    },
  }
}
