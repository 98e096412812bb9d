// PIXMILL_DURABILITY: what SQLite is told for each level, and each embedded store opened at the level set.

import { Database } from 'bun:sqlite'
import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { type Durability, sqlitePragmas } from '../../src/shared/durability.ts'
import { freePort, type RoleProcess, spawnRole } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

const dirs: Array<ReturnType<typeof tempDir>> = []
afterAll(() => {
  for (const d of dirs) d.remove()
})

describe('durability', () => {
  test.each([
    ['process', 1],
    ['power', 2],
  ] as const)('%s: a SQLite file in WAL mode with synchronous %d (NORMAL, FULL)', (durability, synchronous) => {
    const dir = tempDir('pixmill-durability-')
    dirs.push(dir)
    const db = new Database(join(dir.path, 'probe.sqlite'), { create: true })
    db.exec(sqlitePragmas(durability))
    expect(db.prepare<{ journal_mode: string }, []>('PRAGMA journal_mode').get()!.journal_mode).toBe('wal')
    expect(db.prepare<{ synchronous: number }, []>('PRAGMA synchronous').get()!.synchronous).toBe(synchronous)
    db.close()
  })

  test.each(['process', 'power'] as const)('PIXMILL_DURABILITY=%s reaches the kv, database and storage stores', async (durability: Durability) => {
    const dir = tempDir('pixmill-durability-')
    dirs.push(dir)
    const env = { PIXMILL_DURABILITY: durability, PIXMILL_LOG_LEVEL: 'info' }
    const kv = `127.0.0.1:${freePort()}`
    const roles: RoleProcess[] = []
    try {
      roles.push(await spawnRole('kv', [kv], { dataDir: dir.path, healthAt: kv, env }))
      for (const role of ['database', 'storage']) {
        const self = `127.0.0.1:${freePort()}`
        roles.push(await spawnRole(role, [self, kv], { dataDir: dir.path, healthAt: self, env }))
      }
    } finally {
      await Promise.all(roles.map((role) => role.terminate()))
    }
    // Each entry says how it opened its store (JSON lines: the output is no terminal).
    for (const [role, message] of [
      ['kv', 'kv store: bun:sqlite'],
      ['database', 'task store: bun:sqlite'],
      ['storage', 'images kept on the file system'],
    ]) {
      const lines = (await Bun.file(join(dir.path, `${role}.log`)).text())
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { msg?: string; durability?: string })
      expect(lines.find((line) => line.msg === message)?.durability, role).toBe(durability)
    }
  })
})
