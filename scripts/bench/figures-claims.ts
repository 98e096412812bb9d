// database POST /getNewTask: claims per second by 100 concurrent callers draining a full queue, none claimed twice.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BenchContext, call } from './context.ts'
import { type Figure, figure } from './model.ts'
import { startBaseline } from './processes.ts'
import { assertClean, collectLua, postLua, runWrk, STOP_LUA, type WrkResult } from './wrk.ts'

const CALLERS = 100
/** Upper bound of the drain; the run ends at the first "no task" answer, long before. */
const DRAIN_LIMIT_SECONDS = 300
/** Tasks in the queue before the drain. */
const QUEUE_FULL = 20_000
const QUEUE_QUICK = 2_000

const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean)

/** Runs `work` over `items` with `width` at a time. */
async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!)
    }),
  )
}

/**
 * Fills the queue with `size` tasks through /newTask, then drains it with /getNewTask, keeping "id token" of each claim
 * in `claimedFile`; `claimed` is how many claims were answered.
 */
export async function fillAndDrain(ctx: BenchContext, db: string, claimedFile: string) {
  // Ids are consecutive: every id from the first sentinel to the last is one of ours, including those whose answer
  // was still on the wire when wrk stopped. The fill stops at `size` answers.
  const size = ctx.quick ? QUEUE_QUICK : QUEUE_FULL
  const first = Number(await call(`${db}/newTask`, { method: 'POST' }))
  const fill = assertClean(
    await runWrk({
      url: `${db}/newTask`,
      connections: CALLERS,
      seconds: DRAIN_LIMIT_SECONDS,
      workDir: ctx.workDir,
      lua: `${postLua()}${STOP_LUA}\nlocal n = 0\nresponse = function() n = n + 1 if n >= ${size} then stop_run() end end\n`,
    }),
    'database POST /newTask (filling the queue)',
  )
  const last = Number(await call(`${db}/newTask`, { method: 'POST' }))
  const created = Array.from({ length: last - first + 1 }, (_, i) => first + i)
  for (const id of created) ctx.ownTasks.add(id)
  ctx.progress(`  filled the queue: ${created.length} tasks, ${Math.round(fill.requestsPerSecond).toLocaleString('en-US')} /newTask per s`)

  // Keep "id token" of every claim; the first answer that is not a claim means the queue is empty and ends the run.
  const drain = await runWrk({
    url: `${db}/getNewTask`,
    connections: CALLERS,
    seconds: DRAIN_LIMIT_SECONDS,
    workDir: ctx.workDir,
    lua: `${postLua()}${collectLua(claimedFile)}${STOP_LUA}
response = function(status, headers, body)
  if status == 200 then
    lines[#lines + 1] = body:match('"id":(%d+)') .. " " .. (body:match('"leaseToken":"([^"]+)"') or "")
  else
    stop_run()
  end
end
`,
  })
  return { created, fill, drain, claimed: lines(claimedFile).length }
}

export async function claimsFigure(ctx: BenchContext): Promise<Figure> {
  const db = `http://${ctx.system.addresses.database}`
  const claimedFile = join(ctx.workDir, 'claimed-ids.txt')

  // The limit: the bare server at the same 100 connections, asked with the same POST, before and after the drain.
  const bare = await startBaseline('constant', undefined, ctx.workDir)
  const bareRun = async () =>
    assertClean(
      await runWrk({ url: `http://${bare.address}/`, connections: CALLERS, seconds: ctx.seconds, lua: postLua(), workDir: ctx.workDir }),
      'bare Bun.serve',
    )
  let bases: WrkResult[]
  let drain: WrkResult
  let created: number[]
  let fill: WrkResult
  try {
    if (!ctx.quick) await bareRun()
    const before = await bareRun()
    ;({ created, fill, drain } = await fillAndDrain(ctx, db, claimedFile))
    bases = [before, await bareRun()]
  } finally {
    await bare.stop()
  }
  const base = bases.reduce((sum, r) => sum + r.requestsPerSecond, 0) / bases.length

  const claims = lines(claimedFile).map((line) => {
    const [id, token] = line.split(' ')
    return { id: Number(id), token: token ?? '' }
  })
  const seen = new Set<number>()
  let duplicates = 0
  for (const c of claims) {
    if (seen.has(c.id)) duplicates++
    else seen.add(c.id)
  }
  if (duplicates > 0) throw new Error(`${duplicates} tasks were claimed twice`)

  // A claim whose answer was still on the wire when the run stopped is not in the list: the database must show it claimed.
  const unseen = created.filter((id) => !seen.has(id))
  for (const id of unseen) {
    const task = JSON.parse(await call(`${db}/getById?id=${id}`)) as { state: number }
    if (task.state !== 1) throw new Error(`task ${id} was created but never claimed (state ${task.state})`)
  }
  const errors = drain.errors
  if (errors.connect + errors.read + errors.write + errors.timeout > 0) throw new Error(`claims: socket errors ${JSON.stringify(errors)}`)
  const rate = claims.length / drain.seconds
  ctx.progress(`  database POST /getNewTask: ${Math.round(rate).toLocaleString('en-US')} claims/s, ${claims.length} claims, no duplicates`)

  // Leave nothing to expire into a worker's hands: finish ours, put anyone else's task back (addresses mode).
  const ours = [...claims.filter((c) => ctx.ownTasks.has(c.id)), ...unseen.map((id) => ({ id, token: '' }))]
  const theirs = claims.filter((c) => !ctx.ownTasks.has(c.id))
  await inParallel(ours, 16, (c) => call(`${db}/finishTask?id=${c.id}${c.token ? `&lease=${c.token}` : ''}`, { method: 'POST' }))
  await inParallel(theirs, 4, (c) =>
    call(`${db}/setById`, { method: 'POST', body: JSON.stringify({ id: c.id, state: 0 }), headers: { 'content-type': 'application/json' } }),
  )

  return figure({
    id: 'database.getNewTask',
    label: 'database POST /getNewTask',
    load: `${CALLERS} callers, a queue of ${created.length}`,
    value: rate,
    unit: 'claims/s',
    p50Ms: drain.latencyMs.p50,
    p99Ms: drain.latencyMs.p99,
    baseline: { label: `bare Bun.serve, constant text (${CALLERS} connections)`, value: base, unit: 'req/s', p99Ms: bases[0]!.latencyMs.p99 },
    details: {
      claims: claims.length,
      duplicateClaims: duplicates,
      claimedAfterStop: unseen.length,
      otherTasksPutBack: theirs.length,
      queueFilledPerSecond: Math.round(fill.requestsPerSecond),
    },
  })
}
