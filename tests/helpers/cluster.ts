// A whole system of real role processes for fault-injection tests: start, kill, restart, read logs, check images.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { type Bytes, encodePng } from './png.ts'
import { freePort, type RoleProcess, spawnCommand, spawnRole, waitHealthy } from './processes.ts'
import { tempDir } from './temp.ts'
import { waitFor } from './wait-for.ts'

export { waitFor }

export type ServiceRole = 'kv' | 'database' | 'storage' | 'master'
const SERVICES: readonly ServiceRole[] = ['kv', 'database', 'storage', 'master']

/** The JSON lines of a role's log (other lines, such as Bun's own, left out). */
export function logLines(file: string): Array<Record<string, unknown>> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return []
  }
  return text.split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line)
      return parsed && typeof parsed === 'object' ? [parsed as Record<string, unknown>] : []
    } catch {
      return []
    }
  })
}

/** Lines of `file` with this `msg` (and, when given, this `task`/`id` field). */
export function logged(file: string, msg: string | RegExp, task?: number): Array<Record<string, unknown>> {
  return logLines(file).filter(
    (line) => (typeof msg === 'string' ? line.msg === msg : msg.test(String(line.msg))) && (task === undefined || line.task === task || line.id === task),
  )
}

export interface ClusterOptions {
  /** PIXMILL_* settings for every role. */
  readonly env?: Record<string, string>
  /** Leave the kv store out at start (a test starts it later with `start('kv')`). */
  readonly withoutKv?: boolean
  /** Do not wait for the roles to be healthy. */
  readonly noWait?: boolean
  /** Wraps a role's command line, e.g. to run it under `ulimit` (default: `bun run src/<role>.ts <args>`). */
  readonly command?: Partial<Record<ServiceRole, (bunRun: string) => string[]>>
}

/** kv, database, storage and master as processes on free ports over one temp data folder, plus workers on demand. */
export async function startCluster(options: ClusterOptions = {}) {
  const dir = tempDir('pixmill-faults-')
  const env = { ...options.env }
  const address = Object.fromEntries(SERVICES.map((role) => [role, `127.0.0.1:${freePort()}`])) as Record<ServiceRole, string>
  const roles: Partial<Record<ServiceRole, RoleProcess>> = {}
  const workers: RoleProcess[] = []
  const argsOf = (role: ServiceRole) => (role === 'kv' ? [address.kv] : [address[role], address.kv])

  async function start(role: ServiceRole, wait = true): Promise<RoleProcess> {
    const wrap = options.command?.[role]
    const proc = wrap
      ? spawnCommand(role, wrap(['bun', 'run', `src/${role}.ts`, ...argsOf(role)].join(' ')), dir.path, env)
      : await spawnRole(role, argsOf(role), { dataDir: dir.path, env })
    roles[role] = proc
    if (wait) await waitHealthy(address[role], 20_000, proc)
    return proc
  }

  const cluster = {
    dir: dir.path,
    address,
    roles,
    workers,
    start,
    /** kill -9, then the same command line over the same data folder. */
    async restart(role: ServiceRole, downMs = 0): Promise<RoleProcess> {
      await roles[role]?.kill9()
      if (downMs > 0) await Bun.sleep(downMs)
      return start(role)
    },
    /** A worker process with its own log (`<dir>/<name>/worker.log`); resolves once it has started its loops. */
    async startWorker(name: string, workerEnv: Record<string, string> = {}, threads = 1): Promise<RoleProcess> {
      const own = join(dir.path, name)
      mkdirSync(own, { recursive: true })
      const worker = await spawnRole('worker', [address.kv, String(threads)], { dataDir: own, env: { ...env, ...workerEnv } })
      workers.push(worker)
      await waitFor(`${name} to start`, () => logged(worker.logFile, 'worker started').length > 0 || worker.proc.exitCode !== null)
      if (worker.proc.exitCode !== null) throw new Error(`${name} exited with ${worker.proc.exitCode}; see ${worker.logFile}`)
      return worker
    },
    /** POST /new; the id, or the refusal. */
    async upload(png: Uint8Array, init: { requestId?: string; timeoutMs?: number } = {}): Promise<{ status: number; text: string }> {
      const response = await fetch(`http://${address.master}/new`, {
        method: 'POST',
        body: png as Bytes,
        headers: { 'content-type': 'image/png', ...(init.requestId ? { 'x-request-id': init.requestId } : {}) },
        signal: AbortSignal.timeout(init.timeoutMs ?? 10_000),
      })
      return { status: response.status, text: await response.text() }
    },
    async uploadOk(png: Uint8Array, requestId?: string): Promise<number> {
      const got = await cluster.upload(png, { requestId })
      if (got.status !== 200) throw new Error(`upload refused: ${got.status} ${got.text}`)
      return Number(got.text)
    },
    async status(id: number): Promise<{ state: number; attempts: number; error?: string }> {
      const response = await fetch(`http://${address.master}/status?id=${id}`, { signal: AbortSignal.timeout(5000) })
      if (response.status !== 200) throw new Error(`status of ${id}: ${response.status} ${await response.text()}`)
      return (await response.json()) as { state: number; attempts: number; error?: string }
    },
    /** Waits until the task is in one of `states`, and answers its status. */
    async waitState(id: number, states: readonly number[], timeoutMs = 20_000) {
      return waitFor(
        `task ${id} to reach state ${states.join(' or ')}`,
        async () => {
          const status = await cluster.status(id).catch(() => undefined)
          return status && states.includes(status.state) ? status : undefined
        },
        timeoutMs,
        20,
      )
    },
    /** The stored image of `id` in `area`, or undefined. */
    async image(id: number, area: 'working' | 'finished'): Promise<Uint8Array | undefined> {
      const response = await fetch(`http://${address.storage}/getImage?id=${id}&state=${area}`, { signal: AbortSignal.timeout(10_000) })
      if (response.status !== 200) return void (await response.body?.cancel())
      return new Uint8Array(await response.arrayBuffer())
    },
    /** kill -9 of every worker started so far, so that the next test starts with none. */
    async killWorkers() {
      await Promise.allSettled(workers.splice(0).map((worker) => worker.kill9()))
    },
    async close() {
      await Promise.allSettled([...workers, ...Object.values(roles)].map((proc) => proc.kill9()))
      dir.remove()
    },
  }
  if (!options.withoutKv) await start('kv', !options.noWait)
  await Promise.all((['database', 'storage', 'master'] as const).map((role) => start(role, !options.noWait)))
  return cluster
}

export type Cluster = Awaited<ReturnType<typeof startCluster>>

/** Waits until every service of the cluster answers /health with 200. */
export async function waitClusterHealthy(cluster: Cluster, timeoutMs = 20_000): Promise<void> {
  await Promise.all(SERVICES.map((role) => waitHealthy(cluster.address[role], timeoutMs, cluster.roles[role])))
}

/**
 * A flat opaque RGB PNG of `side` x `side` pixels: a few hundred KiB at most, yet slow to process (it is decoded and
 * encoded in full: about 1.3 s for 6000 x 6000 here). Its result is one colour, (g, r, b, 255).
 */
export async function slowPng(side: number, rgb: readonly [number, number, number] = [200, 30, 90]): Promise<Bytes> {
  const png = await sharp({ create: { width: side, height: side, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png({ compressionLevel: 9 })
    .toBuffer()
  return new Uint8Array(png)
}

/** Like slowPng, but 16-bit RGBA and half transparent: more than twice the work (2.9 s for 6000 x 6000 here). */
export async function slowerPng(side: number): Promise<Bytes> {
  const png = await sharp({ create: { width: side, height: side, channels: 4, background: { r: 200, g: 30, b: 90, alpha: 0.5 } } })
    .toColourspace('rgb16')
    .png({ compressionLevel: 9 })
    .toBuffer()
  return new Uint8Array(png)
}

/** The one colour of a flat PNG's result by the PROTOCOL rule: its first pixel composited over black, swapped, opaque. */
export async function flatResultColour(png: Uint8Array): Promise<number[]> {
  const meta = await sharp(png).metadata()
  const sixteen = meta.depth === 'ushort'
  const { data } = await sharp(png, { limitInputPixels: false })
    .extract({ left: 0, top: 0, width: 1, height: 1 })
    .ensureAlpha(1)
    .toColourspace(sixteen ? 'rgb16' : 'srgb')
    .raw({ depth: sixteen ? 'ushort' : 'uchar' })
    .toBuffer({ resolveWithObject: true })
  const [r, g, b, a] = sixteen ? [0, 1, 2, 3].map((i) => data.readUInt16LE(2 * i)) : [...data.subarray(0, 4)]
  const max = sixteen ? 65535 : 255
  const scale = sixteen ? 257 : 1
  // round(c * a / max) on the 8-bit scale, half up, as the worker computes it.
  const over = (c: number) => Math.floor((2 * c * a! + max * scale) / (2 * max * scale))
  return [over(g!), over(r!), over(b!), 255]
}

/** A small opaque RGB PNG whose pixels follow from `seed`, so that every upload differs. */
export function smallPng(seed: number, width = 3, height = 2): Bytes {
  const pixels = Array.from({ length: height }, (_, y) =>
    Array.from({ length: width }, (_, x) => [(seed * 7 + x * 40) % 256, (seed * 13 + y * 60) % 256, (seed + x + y) % 256]),
  )
  return encodePng(width, height, 2, 8, pixels)
}

/** An opaque RGB PNG of random pixels: it does not compress, so its size is about 3 bytes a pixel. */
export function noisyPng(width: number, height: number, seed = 1): Bytes {
  let s = seed >>> 0
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s >>> 24
  }
  return encodePng(
    width,
    height,
    2,
    8,
    Array.from({ length: height }, () => Array.from({ length: width }, () => [next(), next(), next()])),
    { filter: 0 },
  )
}

/**
 * Whether `result` is the worker's rule applied to the opaque `input`: same size, 8-bit RGBA, each pixel (G, R, B, 255).
 * Compares whole decoded buffers; for large flat images use `isFlatResult`.
 */
export async function isSwapOf(input: Uint8Array, result: Uint8Array): Promise<boolean> {
  const source = await sharp(input).removeAlpha().raw().toBuffer({ resolveWithObject: true })
  // RGB or RGBA (both are allowed for an opaque result): read as RGBA.
  const out = await sharp(result).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
  if (out.info.channels !== 4 || out.info.width !== source.info.width || out.info.height !== source.info.height) return false
  for (let p = 0, q = 0; p < source.data.length; p += 3, q += 4) {
    if (out.data[q] !== source.data[p + 1] || out.data[q + 1] !== source.data[p] || out.data[q + 2] !== source.data[p + 2] || out.data[q + 3] !== 255)
      return false
  }
  return true
}

/** Whether `result` is a `side` x `side` 8-bit RGB or RGBA PNG whose every pixel reads as `rgba` (see flatResultColour). */
export async function isFlatResult(result: Uint8Array, side: number, rgba: readonly number[]): Promise<boolean> {
  const meta = await sharp(result).metadata()
  if (meta.format !== 'png' || meta.width !== side || meta.height !== side || (meta.channels !== 4 && meta.channels !== 3)) return false
  // A whole decode and a word-by-word compare: several times faster than sharp's stats() on 36 Mpx.
  const { data } = await sharp(result, { limitInputPixels: false }).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
  const aligned = data.byteOffset % 4 === 0 ? data : Buffer.from(data)
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4)
  const want = new Uint32Array(Uint8Array.from(rgba).buffer)[0]
  for (let i = 0; i < words.length; i++) if (words[i] !== want) return false
  return words.length === side * side
}
