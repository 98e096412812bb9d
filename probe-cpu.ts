// CPU per image of every process: a system started as the bench starts it, a worker of 2 threads, N uploads.
import { readFileSync } from 'node:fs'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startOneProcessSystem, startSystem } from './scripts/bench/processes.ts'
import { writeImageSet } from './scripts/bench/images.ts'
const layout = process.argv[2] ?? 'separate'
const threads = Number(process.argv[3] ?? 2)
const size = Number(process.argv[4] ?? 512)
const n = Number(process.argv[5] ?? 160)
const dir = mkdtempSync(join(tmpdir(), 'probe-cpu-'))
const system = layout === 'separate' ? await startSystem(dir) : await startOneProcessSystem(dir)
const worker = await system.startWorker(threads)
const files = await writeImageSet(dir, size, n)
const pngs = files.map((f) => new Uint8Array(readFileSync(f)))
const tick = 100 // CLK_TCK
const pids = () => {
  const out = Bun.spawnSync(['pgrep', '-a', 'bun']).stdout.toString().trim().split('\n')
  return out.filter((l) => l.includes(dir) || /src\/(kv|database|storage|master|worker)\.ts|launch\.ts/.test(l)).map((l) => ({ pid: Number(l.split(' ')[0]), name: (/src\/(\w+)\.ts|(launch)\.ts/.exec(l) ?? [])[1] ?? 'launch' }))
}
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return { user: Number(f[11]) / tick, sys: Number(f[12]) / tick } }
const self = () => { const u = process.cpuUsage(); return { user: u.user / 1e6, sys: u.system / 1e6 } }
const master = system.addresses.master
const post = (png: Uint8Array) => fetch(`http://${master}/new`, { method: 'POST', body: png as Uint8Array<ArrayBuffer>, headers: { 'content-type': 'image/png' } }).then((r) => r.text())
// warm up
const w = await post(pngs[0]!); while ((await (await fetch(`http://${master}/isReady?id=${w}`)).text()) !== '1') await Bun.sleep(5)
const procs = pids()
const before = procs.map((p) => cpu(p.pid)); const s0 = self()
const t0 = performance.now()
const ids = []
for (const png of pngs) ids.push(await post(png))
for (const id of ids) while ((await (await fetch(`http://${master}/isReady?id=${id}`)).text()) !== '1') await Bun.sleep(10)
const secs = (performance.now() - t0) / 1000
const s1 = self()
console.log(`${layout}, ${threads} threads, ${size}px: ${(n / secs).toFixed(1)} images/s`)
procs.forEach((p, i) => { const a = cpu(p.pid); console.log(`  ${p.name.padEnd(9)} user ${(((a.user - before[i]!.user) * 1000) / n).toFixed(1)} ms  sys ${(((a.sys - before[i]!.sys) * 1000) / n).toFixed(1)} ms per image`) })
console.log(`  client    user ${(((s1.user - s0.user) * 1000) / n).toFixed(1)} ms  sys ${(((s1.sys - s0.sys) * 1000) / n).toFixed(1)} ms per image`)
await worker.stop(); await system.stop()
