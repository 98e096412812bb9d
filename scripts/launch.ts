// The launcher: any set of roles, in this process or each as its own process (`bun run start -- --help`).

import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { restartWithAllocatorSettings } from '../src/runtime/allocator.ts'
import type { RunningRole } from '../src/runtime/serve-role.ts'
import { loadSettings } from '../src/shared/config.ts'
import { runSeparate } from './launch-separate.ts'

export const ROLES = ['kv', 'database', 'storage', 'master', 'worker', 'frontend'] as const
export type LaunchRole = (typeof ROLES)[number]

const HELP = `pixmill launcher

usage: bun run start [-- options]        (or: bun run scripts/launch.ts [options])

  --roles a,b,...   roles to start (default: all): ${ROLES.join(', ')}
  --separate        each role as its own process: log lines prefixed with the role,
                    a crashed role restarted with back-off, all stopped on Ctrl-C/SIGTERM
                    (default: every role in this one process)
  --kv host:port    the kv store to use when kv is not among --roles (default localhost:3000)
  --host name       the host name roles register for each other (default localhost)
  --threads N       worker loops (default 2)
  --data dir        data folder, as PIXMILL_DATA_DIR (default ./data)
  --port-offset N   add N to every default port (to run a second system beside the first)
  --help            this text

Ports are the defaults of docs/protocol.md: kv 3000, database 3001, storage 3002, master 3003, frontend 8080.
`

export interface LaunchPlan {
  readonly roles: readonly LaunchRole[]
  readonly separate: boolean
  readonly kv: string
  readonly host: string
  readonly threads: number
  readonly portOffset: number
}

/** The default ports (docs/protocol.md). */
export const DEFAULT_PORTS = { kv: 3000, database: 3001, storage: 3002, master: 3003, frontend: 8080 } as const

/** The port a role listens on under the plan. */
export function portOf(role: keyof typeof DEFAULT_PORTS, plan: Pick<LaunchPlan, 'portOffset'>): number {
  return DEFAULT_PORTS[role] + plan.portOffset
}

/** The command-line arguments of each role under the plan. */
export function roleArgs(role: LaunchRole, plan: LaunchPlan): string[] {
  const at = (r: keyof typeof DEFAULT_PORTS) => `${plan.host}:${portOf(r, plan)}`
  switch (role) {
    case 'kv':
      return [`:${plan.kv.split(':').pop()}`]
    case 'database':
    case 'storage':
    case 'master':
      return [at(role), plan.kv]
    case 'worker':
      return [plan.kv, String(plan.threads)]
    case 'frontend':
      return [plan.kv, `:${portOf('frontend', plan)}`]
  }
}

/** Parses the launcher's options; throws with the help text on a bad one. */
export function parsePlan(argv: readonly string[]): LaunchPlan | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      roles: { type: 'string' },
      separate: { type: 'boolean', default: false },
      kv: { type: 'string' },
      host: { type: 'string', default: 'localhost' },
      threads: { type: 'string', default: '2' },
      data: { type: 'string' },
      'port-offset': { type: 'string', default: '0' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  })
  if (values.help) return 'help'
  const roles = (values.roles ?? ROLES.join(','))
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean)
  const unknown = roles.filter((r) => !(ROLES as readonly string[]).includes(r))
  if (unknown.length > 0 || roles.length === 0) throw new Error(`unknown role(s): ${unknown.join(', ') || '(none given)'}`)
  const threads = Number(values.threads)
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new Error('--threads must be an integer from 1 to 256')
  const portOffset = Number(values['port-offset'])
  if (!Number.isInteger(portOffset) || portOffset < 0 || portOffset > 50_000) throw new Error('--port-offset must be an integer from 0 to 50000')
  if (values.data) process.env.PIXMILL_DATA_DIR = resolve(values.data)
  // Keep the order of ROLES, so that kv starts first and the others find what they need.
  const ordered = ROLES.filter((r) => roles.includes(r))
  const kv = values.kv ?? `${values.host}:${DEFAULT_PORTS.kv + portOffset}`
  return { roles: ordered, separate: values.separate, kv, host: values.host, threads, portOffset }
}

/** Imports a role's entry and starts it in this process. */
async function startInProcess(role: LaunchRole, plan: LaunchPlan, settings = loadSettings()): Promise<RunningRole> {
  const entry = (await import(`../src/${role}.ts`)) as Record<string, (argv: string[], s: typeof settings) => Promise<RunningRole>>
  const start = entry[`start${role[0]!.toUpperCase()}${role.slice(1)}`]
  if (!start) throw new Error(`src/${role}.ts has no start function`)
  return start(roleArgs(role, plan), settings)
}

function printWhere(plan: LaunchPlan): void {
  const has = (role: LaunchRole) => plan.roles.includes(role)
  const lines = ['', 'pixmill is running:']
  if (has('frontend')) lines.push(`  web page           http://localhost:${portOf('frontend', plan)}/   (status board: /board)`)
  if (has('master')) lines.push(`  master API         http://localhost:${portOf('master', plan)}/swagger`)
  for (const role of ['kv', 'database', 'storage'] as const) {
    if (has(role)) lines.push(`  ${role.padEnd(18)} http://localhost:${portOf(role, plan)}/swagger`)
  }
  if (has('worker')) lines.push(`  worker             ${plan.threads} loop(s); its port (PIXMILL_WORKER_LISTEN) is listed on the board`)
  lines.push(`  data               ${loadSettings().dataDir}`, 'Stop with Ctrl-C.', '')
  console.log(lines.join('\n'))
}

async function main(argv: readonly string[]): Promise<void> {
  let plan: LaunchPlan | 'help'
  try {
    plan = parsePlan(argv)
  } catch (error) {
    console.error(`Error: ${(error as Error).message}\n\n${HELP}`)
    process.exit(2)
  }
  if (plan === 'help') {
    console.log(HELP)
    return
  }
  if (plan.separate) {
    // Each child gets the allocators' settings of its own role (runSeparate); this process runs none.
    await runSeparate(plan.roles.map((role) => ({ role, args: roleArgs(role, plan as LaunchPlan) })))
    printWhere(plan)
    return
  }
  // Before any role starts: the settings for the roles this process runs.
  restartWithAllocatorSettings(plan.roles)
  const started: RunningRole[] = []
  const stopAll = async (signal: string) => {
    console.error(`${signal}: stopping ${started.map((r) => r.role).join(', ')}`)
    // Stop in reverse order: clients of a role stop before the role itself.
    for (const role of [...started].reverse()) await role.stop().catch(() => {})
    process.exit(0)
  }
  process.once('SIGINT', () => void stopAll('SIGINT'))
  process.once('SIGTERM', () => void stopAll('SIGTERM'))
  try {
    const settings = loadSettings()
    for (const role of plan.roles) started.push(await startInProcess(role, plan, settings))
  } catch (error) {
    console.error(`Error: ${(error as Error).message}`)
    for (const role of [...started].reverse()) await role.stop().catch(() => {})
    process.exit(1)
  }
  printWhere(plan)
}

if (import.meta.main) await main(process.argv.slice(2))
