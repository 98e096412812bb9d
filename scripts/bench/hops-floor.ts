// `bun run scripts/bench/hops-floor.ts [size] [count]`: what moving an image (512x512 by default) over the system's HTTP hops costs when
// bare Bun servers do nothing else (no checks, no database, no logs), beside the CPU of the image work itself. With
// N loops on N cores every millisecond of the hops is missing from the codec, so codec / (codec + hops) is the most an
// end-to-end figure can reach against the raw image work on this machine, whatever the roles do.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { swapRedGreen } from '../../src/roles/worker/image-work.ts'
import { restartWithAllocatorSettings } from '../../src/runtime/allocator.ts'
import { loadSettings } from '../../src/shared/config.ts'
import { writeImageSet } from './images.ts'
import { processCpuMs } from './machine.ts'
import { startBaseline } from './processes.ts'

// The image work below runs here, with the allocators set as in a worker (the servers get the same from processes.ts).
restartWithAllocatorSettings(['worker'])

const size = Number(process.argv[2] ?? 512)
const count = Number(process.argv[3] ?? (size > 1024 ? 12 : 100))
const ROUNDS = 3
const dir = mkdtempSync(join(tmpdir(), 'pixmill-hops-'))

try {
  mkdirSync(join(dir, 'images'))
  const files = await writeImageSet(join(dir, 'images'), size, count)
  const pngs = files.map((file) => new Uint8Array(readFileSync(file)))

  // The image work in this process, warm (every image once first).
  const settings = loadSettings()
  const options = { maxPixels: settings.maxPixels, effort: settings.pngEffort }
  const results = new Map<number, Uint8Array<ArrayBuffer>>()
  for (const [i, png] of pngs.entries()) results.set(i, await swapRedGreen(png, options))
  // Then as many at a time as there are cores, as the figures with every core in the codec run it: a codec sharing
  // the machine's caches and memory costs more per image than one alone.
  const loops = availableParallelism()
  const codecStart = processCpuMs(process.pid)
  for (let round = 0; round < ROUNDS; round++) {
    let next = 0
    await Promise.all(
      Array.from({ length: loops }, async () => {
        while (next < count) await swapRedGreen(pngs[next++]!, options)
      }),
    )
  }
  const codec = (processCpuMs(process.pid) - codecStart) / (ROUNDS * count)

  // The hops of one task: the upload through a master-like server into a store, a claim, the worker's fetch of the
  // image and store of a result of the same size, its report and the client's poll.
  mkdirSync(join(dir, 'store'))
  const store = await startBaseline('store', join(dir, 'store'), dir)
  const master = await startBaseline('pass', store.address, dir)
  const call = async (url: string, init?: RequestInit) => {
    const response = await fetch(url, init)
    if (response.status !== 200) throw new Error(`${url}: ${response.status}`)
    return response
  }
  const task = async (i: number) => {
    const id = await (await call(`http://${master.address}/new`, { method: 'POST', body: pngs[i]! })).text()
    await (await call(`http://${master.address}/getNewTask`, { method: 'POST' })).text()
    await (await call(`http://${store.address}/getImage?id=${id}&state=working`)).arrayBuffer()
    await (await call(`http://${store.address}/sendImage?id=${id}&state=finished`, { method: 'POST', body: results.get(i)! })).text()
    await (await call(`http://${master.address}/registerTaskFinished?id=${id}`, { method: 'POST' })).text()
    await (await call(`http://${master.address}/isReady?id=${id}`)).text()
  }
  try {
    for (let i = 0; i < count; i++) await task(i)
    const before = [processCpuMs(master.pid), processCpuMs(store.pid), processCpuMs(process.pid)]
    for (let round = 0; round < ROUNDS; round++) for (let i = 0; i < count; i++) await task(i)
    const [masterMs, storeMs, callerMs] = [processCpuMs(master.pid), processCpuMs(store.pid), processCpuMs(process.pid)].map(
      (ms, i) => (ms - before[i]!) / (ROUNDS * count),
    )
    const hops = masterMs! + storeMs! + callerMs!
    const mib = pngs.reduce((sum, png) => sum + png.byteLength, 0) / count / 1024 / 1024
    console.log(`${count} PNGs of ${size}x${size} (${mib.toFixed(2)} MiB on average), ${ROUNDS} rounds, ms of CPU per image:`)
    console.log(`  ${`image work (decode, swap, encode), ${loops} at a time`.padEnd(48)}${codec.toFixed(2)}`)
    console.log(`  ${'bare hops: master-like pass-through'.padEnd(48)}${masterMs!.toFixed(2)}`)
    console.log(`  ${'bare hops: store (Bun.write, Bun.file)'.padEnd(48)}${storeMs!.toFixed(2)}`)
    console.log(`  ${'bare hops: client and worker calls'.padEnd(48)}${callerMs!.toFixed(2)}`)
    console.log(`  ceiling with every core in the codec: ${((100 * codec) / (codec + hops)).toFixed(0)} % of the raw image work`)
  } finally {
    await Promise.all([master.stop(), store.stop()])
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
