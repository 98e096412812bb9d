// Client of the kv role: registration and lookup, against this project's kv or an original one.
import { callPeer, type Fetch, peerTransport } from './http.ts'

export interface KvClient {
  readonly address: string
  /** The value, or undefined for an unknown key. */
  get(key: string): Promise<string | undefined>
  /** `ttlSeconds`: the pair disappears unless set again in time (a registration kept alive by a heartbeat). */
  set(key: string, value: string, ttlSeconds?: number): Promise<void>
  remove(key: string): Promise<void>
  /** The live pairs whose keys start with `prefix` (filtered here too: an original kv answers every pair). */
  list(prefix: string): Promise<Array<readonly [string, string]>>
  /**
   * Whether this kv keeps pairs with a time to live (this project's kv) rather than ignoring `ttl` and keeping every
   * pair for ever (an original kv, which has no `/health` either). Asked once, on the first call that gets an answer.
   */
  expiresPairs(): Promise<boolean>
}

/** A client of the kv role at `address` (`host:port`). */
export function createKvClient(address: string, fetcher: Fetch = peerTransport): KvClient {
  let expires: Promise<boolean> | undefined
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
      return text.split('\n').flatMap((line) => {
        const at = line.indexOf(' : ')
        if (at < 0) return []
        const key = line.slice(0, at)
        // An original kv ignores `prefix` and answers every pair: never trust it to filter.
        return key.startsWith(prefix) ? [[key, line.slice(at + 3)] as const] : []
      })
    },
    expiresPairs() {
      expires ??= (async () => {
        const response = await fetcher(new Request(`http://${address}/health`, { signal: AbortSignal.timeout(5000) }))
        const text = await response.text()
        // Any answer but a router's bare 404 is this project's kv, even a 503 while its store is down.
        return !(response.status === 404 && !text.startsWith('Error:'))
      })().catch((error) => {
        // No answer: ask again next time.
        expires = undefined
        throw error
      })
      return expires
    },
  }
}
