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

/** CPU time (user + system, every thread) of process `pid` so far, in ms; a process gone reads as NaN. */
export function processCpuMs(pid: number): number {
  try {
    // Fields 14 and 15 of /proc/<pid>/stat, after the command name in parentheses; in clock ticks (USER_HZ, 100).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return Number.NaN
  }
}
