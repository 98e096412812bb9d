// storage GET /getImage and POST /sendImage of a 1 MiB PNG at 16 connections, beside nginx and a bare Bun.write server.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BenchContext, call, measurePair, rounds } from './context.ts'
import { oneMibPng } from './images.ts'
import { type Figure, figure } from './model.ts'
import { startBaseline, startNginx } from './processes.ts'
import { MiB } from './stats.ts'
import { postLua } from './wrk.ts'

const CONNECTIONS = 16

export async function storageFigures(ctx: BenchContext): Promise<Figure[]> {
  const storage = `http://${ctx.system.addresses.storage}`
  const png = await oneMibPng()
  const file = join(ctx.workDir, 'one-mib.png')
  writeFileSync(file, png)
  const image = `id=${ctx.fixtureId}&state=finished`
  await call(`${storage}/sendImage?${image}`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } })
  const load = `${CONNECTIONS} connections, ${rounds(ctx)} x ${ctx.seconds} s, ${(png.byteLength / MiB).toFixed(2)} MiB`
  const figures: Figure[] = []

  // The reference: nginx sending the same file with sendfile(2), as a static file server does.
  const reader = await startNginx(file, ctx.workDir)
  try {
    const { base, role } = await measurePair(
      ctx,
      { base: 'nginx, sendfile', role: 'storage GET /getImage' },
      { url: reader.url, connections: CONNECTIONS },
      { url: `${storage}/getImage?${image}`, connections: CONNECTIONS },
    )
    const mibps = (r: typeof base) => r.bytes / r.seconds / MiB
    figures.push(
      figure({
        id: 'storage.getImage',
        label: 'storage GET /getImage',
        load,
        value: role.requestsPerSecond,
        unit: 'req/s',
        p50Ms: role.latencyMs.p50,
        p99Ms: role.latencyMs.p99,
        mibPerSecond: mibps(role),
        baseline: {
          label: 'nginx (1 worker) sending the file with sendfile',
          value: base.requestsPerSecond,
          unit: 'req/s',
          p99Ms: base.latencyMs.p99,
          mibPerSecond: mibps(base),
        },
      }),
    )
  } finally {
    await reader.stop()
  }

  const writesDir = join(ctx.workDir, 'bare-writes')
  mkdirSync(writesDir, { recursive: true })
  const writer = await startBaseline('write', writesDir, ctx.workDir)
  try {
    const { base, role } = await measurePair(
      ctx,
      { base: 'bare Bun.serve, Bun.write', role: 'storage POST /sendImage' },
      { url: `http://${writer.address}/`, connections: CONNECTIONS, lua: postLua(file) },
      { url: `${storage}/sendImage?${image}`, connections: CONNECTIONS, lua: postLua(file) },
    )
    const mibps = (r: typeof base) => (r.requestsPerSecond * png.byteLength) / MiB
    figures.push(
      figure({
        id: 'storage.sendImage',
        label: 'storage POST /sendImage',
        load,
        value: role.requestsPerSecond,
        unit: 'req/s',
        p50Ms: role.latencyMs.p50,
        p99Ms: role.latencyMs.p99,
        mibPerSecond: mibps(role),
        baseline: {
          label: 'bare Bun.serve doing Bun.write(path, request)',
          value: base.requestsPerSecond,
          unit: 'req/s',
          p99Ms: base.latencyMs.p99,
          mibPerSecond: mibps(base),
        },
      }),
    )
  } finally {
    await writer.stop()
  }
  return figures
}
