// The machine a run was made on: cores, CPU model, memory, kernel, and the versions of Bun and wrk.
import { readFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import type { Machine } from './model.ts'

export function describeMachine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const wrk = Bun.spawnSync(['wrk', '-v']).stdout.toString().split('\n')[0] ?? ''
  return {
    cores: cpus().length,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    bun: Bun.version,
    wrk: /wrk (\S+)/.exec(wrk)?.[1] ?? 'unknown',
  }
}
