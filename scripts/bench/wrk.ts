// Load from wrk (one thread), a real load generator outside this process; its Lua done() reports JSON we parse.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface WrkOptions {
  readonly url: string
  readonly connections: number
  readonly seconds: number
  /** Lua run before the reporting `done()`: method, body, request()/response(). */
  readonly lua?: string
  /** Folder for the generated script. */
  readonly workDir: string
  readonly timeoutSeconds?: number
}

export interface WrkResult {
  readonly requests: number
  readonly seconds: number
  readonly requestsPerSecond: number
  /** Bytes received, headers included. */
  readonly bytes: number
  readonly errors: { readonly connect: number; readonly read: number; readonly write: number; readonly status: number; readonly timeout: number }
  readonly latencyMs: { readonly mean: number; readonly max: number; readonly p50: number; readonly p90: number; readonly p99: number }
}

/**
 * Printed by every script. %.0f rather than %d: byte counts pass 2^31. A script may print `WRKSTOP` to end the run
 * early (wrk's own thread:stop() ends the requests but not the clock, which runs for the whole -d).
 */
const DONE_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"durationUs":%.0f,"requests":%.0f,"bytes":%.0f,' ..
    '"errors":{"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f},' ..
    '"latencyUs":{"mean":%.1f,"max":%.0f,"p50":%.0f,"p90":%.0f,"p99":%.0f}}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
  if export_done then export_done() end
end
`

/** Lua that ends the run once (see DONE_LUA): stop this thread's requests and ask the runner to stop the clock. */
export const STOP_LUA = `
local stopped = false
function stop_run()
  if stopped then return end
  stopped = true
  io.write("WRKSTOP\\n")
  io.flush()
  wrk.thread:stop()
end
`

/** Lua string literal of any text (paths, bodies). */
export const luaString = (text: string) => JSON.stringify(text)

let scripts = 0

/** With PIXMILL_TOKEN set the roles' internal endpoints want it; every request carries it (wrk.format adds wrk.headers). */
const AUTH_LUA = process.env.PIXMILL_TOKEN ? `wrk.headers["Authorization"] = ${luaString(`Bearer ${process.env.PIXMILL_TOKEN}`)}\n` : ''

/** Runs `wrk -t1` and returns its figures; throws when wrk fails or prints no report. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const script = join(options.workDir, `wrk-${++scripts}.lua`)
  writeFileSync(script, `${AUTH_LUA}${options.lua ?? ''}\n${DONE_LUA}`)
  const args = ['wrk', '-t1', `-c${options.connections}`, `-d${options.seconds}s`, `--timeout`, `${options.timeoutSeconds ?? 10}s`, '-s', script, options.url]
  const proc = Bun.spawn(args, { stdout: 'pipe', stderr: 'pipe' })
  let out = ''
  let stopped = false
  const decoder = new TextDecoder()
  for await (const chunk of proc.stdout) {
    out += decoder.decode(chunk, { stream: true })
    // SIGINT is wrk's own early end: it stops the clock and still reports.
    if (!stopped && out.includes('WRKSTOP')) {
      stopped = true
      proc.kill('SIGINT')
    }
  }
  const code = await proc.exited
  const stderr = await new Response(proc.stderr).text()
  const line = out.split('\n').find((l) => l.startsWith('WRKJSON '))
  if (!line) throw new Error(`wrk ${args.slice(1).join(' ')} exited ${code} without a report:\n${out}\n${stderr}`)
  const raw = JSON.parse(line.slice('WRKJSON '.length))
  const seconds = raw.durationUs / 1e6
  const ms = (us: number) => us / 1000
  return {
    requests: raw.requests,
    seconds,
    requestsPerSecond: raw.requests / seconds,
    bytes: raw.bytes,
    errors: raw.errors,
    latencyMs: { mean: ms(raw.latencyUs.mean), max: ms(raw.latencyUs.max), p50: ms(raw.latencyUs.p50), p90: ms(raw.latencyUs.p90), p99: ms(raw.latencyUs.p99) },
  }
}

/** Throws unless every request was answered 2xx/3xx without socket errors: a fast error is not throughput. */
export function assertClean(result: WrkResult, what: string): WrkResult {
  const { connect, read, write, status, timeout } = result.errors
  if (connect + read + write + status + timeout > 0 || result.requests === 0) {
    throw new Error(`${what}: ${result.requests} requests with errors ${JSON.stringify(result.errors)}`)
  }
  return result
}

/** Lua that sends every request as POST, with the body read from `file` when given. */
export function postLua(file?: string, contentType = 'image/png'): string {
  const body = file
    ? `local f = assert(io.open(${luaString(file)}, "rb"))\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = ${luaString(contentType)}\n`
    : ''
  return `wrk.method = "POST"\n${body}`
}

/**
 * Lua that keeps what response() appends to the global `lines` and writes it to `file` when the run is done
 * (done() runs in an environment of its own and sees a thread's globals only through thread:get).
 */
export function collectLua(file: string): string {
  return `
local threads = {}
setup = function(thread) table.insert(threads, thread) end
lines = {}
export_done = function()
  local f = assert(io.open(${luaString(file)}, "w"))
  for _, thread in ipairs(threads) do
    for _, line in ipairs(thread:get("lines")) do f:write(line, "\\n") end
  end
  f:close()
end
`
}
