// Client of the storage role: streaming PNG bodies both ways.
import { PNG_SIZE_HEADER } from '../shared/wire/headers.ts'
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { onPeer, type PeerAddress } from './peer-address.ts'

export type Area = 'working' | 'finished'

/** What storage answered for an image it stored. */
export interface StoredImage {
  /** The size the image's IHDR declares, as storage read it (PNG_SIZE_HEADER); undefined from a storage that does not check headers. */
  readonly size?: { readonly width: number; readonly height: number }
}

export interface StorageClient {
  /** Streams `body` to storage as the image of `id` in `area`; resolves once storage answered `success`. */
  send(id: number, area: Area, body: BodyInit, options?: { contentLength?: number; signal?: AbortSignal }): Promise<StoredImage>
  /** Removes the image (`/deleteImage`); succeeds when there is none. NotOffered from a storage of the original protocol. */
  remove(id: number, area: Area): Promise<void>
  /** The image as a streaming response (status 200, `image/png`); NotFound (404) when there is none. */
  get(id: number, area: Area, options?: { signal?: AbortSignal; headers?: Record<string, string> }): Promise<Response>
}

export function createStorageClient(peer: PeerAddress, fetcher: Fetch = peerTransport): StorageClient {
  return {
    async send(id, area, body, options) {
      return onPeer(
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
          const size = /^([0-9]{1,10})x([0-9]{1,10})$/.exec(response.headers.get(PNG_SIZE_HEADER) ?? '')
          return size ? { size: { width: Number(size[1]), height: Number(size[2]) } } : {}
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
