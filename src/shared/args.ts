// The roles' command lines (docs/settings.md): `host:port` addresses, usage lines, non-zero exit on bad input.

export interface Address {
  /** Host to connect to or to listen on; `0.0.0.0` when only a port was given. */
  readonly hostname: string
  readonly port: number
  /** The address as given, `host:port`, used when registering in kv. */
  readonly text: string
}

/** A command line that does not fit the role's usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message)
    this.name = 'UsageError'
  }
}

/** Parses `host:port`, `:port` or `[v6]:port`; throws on anything else. */
export function parseAddress(text: string): Address {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})$/.exec(text)
  const port = match ? Number(match[2]) : Number.NaN
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new Error(`${JSON.stringify(text)} is not a host:port address`)
  }
  const host = match[1]!
  return { hostname: host === '' ? '0.0.0.0' : host.replace(/^\[|\]$/g, ''), port, text }
}

/** The address a peer should use to reach a listener given as `:port`. */
export function dialable(address: Address): string {
  return address.text.startsWith(':') ? `localhost${address.text}` : address.text
}

export type RoleName = 'kv' | 'database' | 'storage' | 'master' | 'worker' | 'frontend'

export const usages: Record<RoleName, string> = {
  kv: 'usage: kv [listen]            e.g. kv :3000',
  database: 'usage: database <self> <kv>   e.g. database localhost:3001 localhost:3000',
  storage: 'usage: storage <self> <kv>    e.g. storage localhost:3002 localhost:3000',
  master: 'usage: master <self> <kv>     e.g. master localhost:3003 localhost:3000',
  worker: 'usage: worker <kv> <threads>  e.g. worker localhost:3000 4',
  frontend: 'usage: frontend <kv> [listen] e.g. frontend localhost:3000 :8080',
}

export interface ServiceArgs {
  readonly self: Address
  readonly kv: Address
}

function address(role: RoleName, what: string, text: string | undefined): Address {
  if (text === undefined) throw new UsageError(`${role}: missing ${what}`, usages[role])
  try {
    return parseAddress(text)
  } catch (error) {
    throw new UsageError(`${role}: bad ${what}: ${(error as Error).message}`, usages[role])
  }
}

function noExtra(role: RoleName, argv: readonly string[], max: number): void {
  if (argv.length > max) throw new UsageError(`${role}: too many arguments`, usages[role])
}

/** `kv [listen]`, listening on :3000 by default. */
export function parseKvArgs(argv: readonly string[]): { listen: Address } {
  noExtra('kv', argv, 1)
  return { listen: argv[0] === undefined ? parseAddress(':3000') : address('kv', 'listen address', argv[0]) }
}

/** `<role> <self> <kv>` for database, storage and master. */
export function parseServiceArgs(role: 'database' | 'storage' | 'master', argv: readonly string[]): ServiceArgs {
  noExtra(role, argv, 2)
  return { self: address(role, '<self> address', argv[0]), kv: address(role, '<kv> address', argv[1]) }
}

/** `worker <kv> <threads>`, threads from 1 to 256. */
export function parseWorkerArgs(argv: readonly string[]): { kv: Address; threads: number } {
  noExtra('worker', argv, 2)
  const kv = address('worker', '<kv> address', argv[0])
  const raw = argv[1]
  if (raw === undefined) throw new UsageError('worker: missing <threads>', usages.worker)
  const threads = Number(raw)
  if (!/^[1-9][0-9]*$/.test(raw) || threads > 256) {
    throw new UsageError(`worker: <threads> must be an integer from 1 to 256, got ${JSON.stringify(raw)}`, usages.worker)
  }
  return { kv, threads }
}

/** `frontend <kv> [listen]`, listening on :8080 by default. */
export function parseFrontendArgs(argv: readonly string[]): { kv: Address; listen: Address } {
  noExtra('frontend', argv, 2)
  return {
    kv: address('frontend', '<kv> address', argv[0]),
    listen: argv[1] === undefined ? parseAddress(':8080') : address('frontend', 'listen address', argv[1]),
  }
}
