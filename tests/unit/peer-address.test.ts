// Finding a role's instances in kv: spreading calls, skipping a failed instance, and when a call may be repeated.
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { createKvClient, type KvClient } from '../../src/clients/kv-client.ts'
import { kvPeer, onPeer } from '../../src/clients/peer-address.ts'
import { createKvApp } from '../../src/roles/kv/app.ts'
import type { KvStore } from '../../src/roles/kv/kv-store.ts'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { DependencyUnavailable } from '../../src/shared/errors.ts'
import { inProcess } from '../helpers/http.ts'
import { quietDeps } from '../helpers/silent.ts'
import { tempDir } from '../helpers/temp.ts'

let dir: ReturnType<typeof tempDir>
let store: KvStore
let kv: KvClient
let kvUp = true
let clock = 0
beforeEach(() => {
  dir = tempDir()
  store = openSqliteKvStore(join(dir.path, 'kv'))
  const app = createKvApp({ store, ...quietDeps('kv') })
  const fetchApp = inProcess(app)
  kvUp = true
  clock = 1_000_000
  kv = createKvClient('kv.local', (request) => (kvUp ? fetchApp(request) : Promise.reject(new TypeError('kv down'))))
})
afterEach(async () => {
  await store.close()
  dir.remove()
})

const peerOf = () => kvPeer(kv, 'masterAddress', { attempts: 1, now: () => clock })
const refused = () => new DependencyUnavailable('refused', 503, true)

describe('kvPeer', () => {
  test('spreads calls round-robin over every live registration', async () => {
    await kv.set('masterAddress/m1:1', 'm1:1', 30)
    await kv.set('masterAddress/m2:1', 'm2:1', 30)
    await kv.set('masterAddress', 'm2:1')
    const peer = peerOf()
    const seen = [await peer.current(), await peer.current(), await peer.current(), await peer.current()]
    expect(seen.sort()).toEqual(['m1:1', 'm1:1', 'm2:1', 'm2:1'])
  })

  test('falls back to the plain key of the original protocol when no instance registered itself', async () => {
    await kv.set('masterAddress', 'old:1')
    expect(await peerOf().current()).toBe('old:1')
  })

  test('an instance that failed is skipped until its time is up; the only instance is never skipped', async () => {
    await kv.set('masterAddress/m1:1', 'm1:1', 30)
    await kv.set('masterAddress/m2:1', 'm2:1', 30)
    const peer = peerOf()
    peer.invalidate('m1:1')
    expect([await peer.current(), await peer.current()]).toEqual(['m2:1', 'm2:1'])
    clock += 5001
    expect(new Set([await peer.current(), await peer.current()])).toEqual(new Set(['m1:1', 'm2:1']))
    await kv.remove('masterAddress/m2:1')
    peer.invalidate('m1:1')
    expect(await peer.current()).toBe('m1:1')
  })

  test('a registration that ran out drops out after the next refresh', async () => {
    await kv.set('masterAddress/m1:1', 'm1:1', 30)
    await kv.set('masterAddress/m2:1', 'm2:1', 30)
    const peer = peerOf()
    await peer.current()
    await kv.remove('masterAddress/m1:1')
    clock += 3001
    expect([await peer.current(), await peer.current()]).toEqual(['m2:1', 'm2:1'])
  })

  test('with kv down it keeps the instances it knew; with none known it fails as unavailable', async () => {
    await kv.set('masterAddress/m1:1', 'm1:1', 30)
    const peer = peerOf()
    await peer.current()
    kvUp = false
    clock += 10_000
    expect(await peer.current()).toBe('m1:1')
    await expect(kvPeer(kv, 'storageAddress', { attempts: 1 }).current()).rejects.toBeInstanceOf(DependencyUnavailable)
  })
})

describe('onPeer', () => {
  beforeEach(async () => {
    await kv.set('masterAddress/m1:1', 'm1:1', 30)
    await kv.set('masterAddress/m2:1', 'm2:1', 30)
  })

  test('a refused connection is tried once more on another instance when the request can be replayed', async () => {
    const tried: string[] = []
    const answer = await onPeer(peerOf(), async (address) => {
      tried.push(address)
      if (tried.length === 1) throw refused()
      return `ok from ${address}`
    })
    expect(tried.length).toBe(2)
    expect(tried[0]).not.toBe(tried[1])
    expect(answer).toBe(`ok from ${tried[1]}`)
  })

  test('a streamed body, or a failure after the request was sent, is not repeated unless the call is idempotent', async () => {
    let calls = 0
    const failing = async () => {
      calls++
      throw refused()
    }
    await expect(onPeer(peerOf(), failing, { replayable: false })).rejects.toBeInstanceOf(DependencyUnavailable)
    expect(calls).toBe(1)
    const sentThenFailed = async () => {
      calls++
      throw new DependencyUnavailable('timed out', 503, false)
    }
    await expect(onPeer(peerOf(), sentThenFailed)).rejects.toBeInstanceOf(DependencyUnavailable)
    expect(calls).toBe(2)
    await expect(onPeer(peerOf(), sentThenFailed, { idempotent: true })).rejects.toBeInstanceOf(DependencyUnavailable)
    expect(calls).toBe(4)
  })

  test('a refusal by the peer (4xx) is not a reason to go elsewhere', async () => {
    let calls = 0
    await expect(
      onPeer(
        peerOf(),
        async () => {
          calls++
          throw new Error('409 conflict')
        },
        { idempotent: true },
      ),
    ).rejects.toThrow('409')
    expect(calls).toBe(1)
  })
})
