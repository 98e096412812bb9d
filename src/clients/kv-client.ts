// Client of the kv role: registration and lookup.
import { NotFound } from '../shared/errors.ts'
import { callPeer, type Fetch, networkFetch } from './http.ts'

export interface KvClient {
  readonly address: string
  /** The value, or undefined for an unknown key. */
  get(key: string): Promise<string | undefined>
  set(key: string, value: string): Promise<void>
  remove(key: string): Promise<void>
}

/** A client of the kv role at `address` (`host:port`). */
export function createKvClient(address: string, fetcher: Fetch = networkFetch): KvClient {
  return {
    address,
    async get(key) {
      try {
        return await (await callPeer(fetcher, 'kv', address, '/get', { query: { key } })).text()
      } catch (error) {
        if (error instanceof NotFound || (error as { status?: number }).status === 404) return undefined
        throw error
      }
    },
    async set(key, value) {
      await (await callPeer(fetcher, 'kv', address, '/set', { method: 'POST', query: { key, value } })).text()
    },
    async remove(key) {
      await (await callPeer(fetcher, 'kv', address, '/remove', { method: 'DELETE', query: { key } })).text()
    },
  }
}
