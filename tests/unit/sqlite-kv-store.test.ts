// The embedded kv store (bun:sqlite) against the KvStore contract, plus its own durability detail.
import { join } from 'node:path'
import { openSqliteKvStore } from '../../src/roles/kv/sqlite-kv-store.ts'
import { kvStoreContract } from '../helpers/kv-store-contract.ts'
import { tempDir } from '../helpers/temp.ts'

kvStoreContract('bun:sqlite', () => {
  const dir = tempDir()
  let now = Date.now()
  return {
    open: () => openSqliteKvStore(join(dir.path, 'kv'), { now: () => now }),
    cleanup: dir.remove,
    pass: async (ms) => {
      now += ms
    },
  }
})
