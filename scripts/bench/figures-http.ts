// Small HTTP answers at 64 connections (kv, database, master) beside a bare Bun.serve answering a constant text.
import type { BenchContext } from './context.ts'
import { call, measurePair, rounds } from './context.ts'
import { type Figure, figure } from './model.ts'
import { startBaseline } from './processes.ts'
import { postLua } from './wrk.ts'

const CONNECTIONS = 64
const BENCH_KEY = 'pixmill-bench'

/** Every /set a new value: a store that skipped unchanged values would otherwise be measured doing nothing. */
const SET_LUA = `${postLua()}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/set?key=${BENCH_KEY}&value=v" .. n)
end
`

/** kv GET /get, kv POST /set, database GET /getById and master GET /isReady, each right after its own baseline run. */
export async function httpFigures(ctx: BenchContext): Promise<Figure[]> {
  const { kv, database, master } = ctx.system.addresses
  const cases = [
    { id: 'kv.get', label: 'kv GET /get', url: `http://${kv}/get?key=databaseAddress` },
    { id: 'kv.set', label: 'kv POST /set', url: `http://${kv}/set`, lua: SET_LUA },
    { id: 'database.getById', label: 'database GET /getById', url: `http://${database}/getById?id=${ctx.fixtureId}` },
    { id: 'master.isReady', label: 'master GET /isReady', url: `http://${master}/isReady?id=${ctx.fixtureId}` },
  ]
  const bare = await startBaseline('constant', undefined, ctx.workDir)
  const figures: Figure[] = []
  try {
    for (const c of cases) {
      // The baseline gets the same method as the role, so that only the server differs.
      const { base, role } = await measurePair(
        ctx,
        { base: 'bare Bun.serve', role: c.label },
        { url: `http://${bare.address}/`, connections: CONNECTIONS, lua: c.lua ? postLua() : undefined },
        { url: c.url, connections: CONNECTIONS, lua: c.lua },
      )
      figures.push(
        figure({
          id: c.id,
          label: c.label,
          load: `${CONNECTIONS} connections, ${rounds(ctx)} x ${ctx.seconds} s`,
          value: role.requestsPerSecond,
          unit: 'req/s',
          p50Ms: role.latencyMs.p50,
          p99Ms: role.latencyMs.p99,
          baseline: { label: 'bare Bun.serve, constant text', value: base.requestsPerSecond, unit: 'req/s', p99Ms: base.latencyMs.p99 },
        }),
      )
    }
  } finally {
    await bare.stop()
    await call(`http://${kv}/remove?key=${BENCH_KEY}`, { method: 'DELETE' }).catch(() => {})
  }
  return figures
}
