// The embedded task store (bun:sqlite) against the TaskStore contract.
import { join } from 'node:path'
import { openSqliteTaskStore } from '../../src/roles/database/sqlite-task-store.ts'
import { taskStoreContract } from '../helpers/task-store-contract.ts'
import { tempDir } from '../helpers/temp.ts'

taskStoreContract('bun:sqlite', () => {
  const dir = tempDir()
  return { open: (options) => openSqliteTaskStore(join(dir.path, 'database'), options), cleanup: dir.remove }
})
