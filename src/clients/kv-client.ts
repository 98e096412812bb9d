// Client of the kv role: registration and lookup.
import { callPeer, type Fetch, peerTransport } from './http.ts'

export interface KvClient {
  readonly address: string
  /** The value, or undefined for an unknown key. */
  get(key: string): Promise<string | undefined>
  /** `ttlSeconds`: the pair disappears unless set again in time (a registration kept alive by a heartbeat). */
  set(key: string, value: string, ttlSeconds?: number): Promise<void>
  remove(key: string): Promise<void>
  /** The live pairs whose keys start with `prefix`. */
  list(prefix: string): Promise<Array<readonly [string, string]>>
}

/** A client of the kv role at `address` (`host:port`). */
export function createKvClient(address: string, fetcher: Fetch = peerTransport): KvClient {
  return {
    address,
    async get(key) {
      try {
        return await (await callPeer(fetcher, 'kv', address, '/get', { query: { key } })).text()
      } catch (error) {
        if ((error as { status?: number }).status === 404) return undefined
        throw error
      }
    },
    async set(key, value, ttlSeconds) {
      await (await callPeer(fetcher, 'kv', address, '/set', { method: 'POST', query: { key, value, ttl: ttlSeconds } })).text()
    },
    async remove(key) {
      await (await callPeer(fetcher, 'kv', address, '/remove', { method: 'DELETE', query: { key } })).text()
    },
    async list(prefix) {
      const text = await (await callPeer(fetcher, 'kv', address, '/list', { query: { prefix } })).text()
      return text
        .split('\n')
        .filter((line) => line.includes(' : '))
        .map((line) => {
          const at = line.indexOf(' : ')
          return [line.slice(0, at), line.slice(at + 3)] as const
        })
    },
  }
}
