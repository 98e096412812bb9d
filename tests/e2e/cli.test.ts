// `pixmill` on the command line against a real system: a folder tree, refusals, --resume, Ctrl-C, a terminal's bars.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { MANIFEST_NAME } from '../../src/cli/manifest.ts'
import { type Cluster, startCluster, waitFor } from '../helpers/cluster.ts'
import { chunk, concat, ihdrChunk, signature } from '../helpers/png.ts'
import { type Fixture, makeFixture } from '../helpers/png-fixtures.ts'
import { httpText, REPO_ROOT, type RoleProcess } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

const TOKEN = 'cli-test-token-0123456789'
const FIXTURES: Record<string, Fixture> = {
  'rgb.png': makeFixture({ ct: 2, depth: 8, width: 120, height: 80, seed: 1 }),
  'rgba16.png': makeFixture({ ct: 6, depth: 16, width: 33, height: 21, seed: 2, interlace: true }),
  'nested/palette.png': makeFixture({ ct: 3, depth: 4, width: 17, height: 9, seed: 3, trns: true }),
  'nested/deeper/grey.png': makeFixture({ ct: 0, depth: 1, width: 29, height: 5, seed: 4 }),
}
/** A header that is fine over pixel data that is not: accepted, then failed by the worker. */
const BROKEN = concat([signature(), ihdrChunk(8, 8, 8, 2), chunk('IDAT', Uint8Array.from([1, 2, 3, 4, 5])), chunk('IEND', new Uint8Array(0))])

let cluster: Cluster
let dir: ReturnType<typeof tempDir>
let _worker: RoleProcess | undefined
beforeAll(async () => {
  dir = tempDir('pixmill-cli-')
  // One upload at a time at the master: the client must honour its 503 with Retry-After.
  cluster = await startCluster({ env: { PIXMILL_TOKEN: TOKEN, PIXMILL_MAX_ATTEMPTS: '1', PIXMILL_MAX_UPLOADS_IN_FLIGHT: '1' } })
})
afterAll(async () => {
  await cluster?.close()
  dir?.remove()
})

function writeTree(root: string, extra: Record<string, Uint8Array> = {}): void {
  for (const [name, bytes] of Object.entries({ ...Object.fromEntries(Object.entries(FIXTURES).map(([n, f]) => [n, f.png])), ...extra })) {
    mkdirSync(join(root, name, '..'), { recursive: true })
    writeFileSync(join(root, name), bytes)
  }
}

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

function cli(args: readonly string[], env: Record<string, string> = {}) {
  return Bun.spawn(['bun', 'run', 'src/cli.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, PIXMILL_TOKEN: '', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
}

async function run(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const proc = cli(args, env)
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}

async function expectResult(file: string, fixture: Fixture): Promise<void> {
  const { data, info } = await sharp(readFileSync(file)).ensureAlpha(1).raw().toBuffer({ resolveWithObject: true })
  expect([info.width, info.height]).toEqual([fixture.width, fixture.height])
  expect(Buffer.from(data).equals(Buffer.from(fixture.expected))).toBe(true)
}

async function ensureWorker(): Promise<void> {
  _worker ??= await cluster.startWorker('worker', {}, 2)
}

async function stopWorker(): Promise<void> {
  await cluster.killWorkers()
  _worker = undefined
}

/** Uploads the master accepted so far, from its metrics. */
async function accepted(): Promise<number> {
  const metrics = (await httpText(cluster.address.master, '/metrics')).text
  return Number(/^pixmill_uploads_total\{outcome="accepted"[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0)
}

describe('e2e: pixmill process', () => {
  test('a folder tree: every PNG processed exactly, the broken and the refused named, exit 1; plain lines off a terminal', async () => {
    await ensureWorker()
    const input = join(dir.path, 'tree')
    writeTree(input, { 'broken.png': BROKEN, 'nested/notes.png': new TextEncoder().encode('this is text, not a PNG') })
    writeFileSync(join(input, 'readme.txt'), 'not a PNG by name: left out')
    const out = join(dir.path, 'tree-out')
    const result = await run(['process', input, '--out', out, '--recursive', '--concurrency', '4', '--master', cluster.address.master])
    expect(result.code).toBe(1)
    for (const [name, fixture] of Object.entries(FIXTURES)) await expectResult(join(out, name), fixture)
    expect(result.stdout).toContain('4 done, 2 failed, 0 skipped of 6')
    expect(result.stdout).toMatch(/failed broken\.png: the image could not be processed: .+/)
    expect(result.stdout).toMatch(/failed nested\/notes\.png: refused: .*not a PNG/)
    expect(existsSync(join(out, 'readme.txt'))).toBe(false)
    // Off a terminal: one line per event, no bars.
    expect(result.stderr).toContain(`done nested/deeper/grey.png -> ${join(out, 'nested/deeper/grey.png')}`)
    expect(result.stderr).not.toContain('█')
    const manifest = JSON.parse(readFileSync(join(out, MANIFEST_NAME), 'utf8'))
    expect(manifest.entries['rgb.png']).toMatchObject({ state: 'done' })
    expect(manifest.entries['nested/notes.png']).toMatchObject({ state: 'refused' })
    // Again: results already there are skipped, unless --overwrite.
    const again = await run(['process', join(input, 'rgb.png'), '--out', out, '--master', cluster.address.master])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('0 done, 0 failed, 1 skipped of 1')
    const overwritten = await run(['process', join(input, 'rgb.png'), '--out', out, '--overwrite', '--kv', cluster.address.kv])
    expect(overwritten.stdout).toContain('1 done, 0 failed, 0 skipped of 1')
  }, 60_000)

  test('--resume after a run killed midway skips what finished and waits for what was uploaded, uploading nothing twice', async () => {
    await stopWorker()
    const input = join(dir.path, 'resume')
    writeTree(input)
    const out = join(dir.path, 'resume-out')
    const first = cli(['process', input, '--out', out, '-r', '--master', cluster.address.master])
    // No worker: the uploads go through and wait; the manifest says so.
    await waitFor(
      'every file uploaded',
      () => {
        try {
          const entries = Object.values(JSON.parse(readFileSync(join(out, MANIFEST_NAME), 'utf8')).entries) as { state: string }[]
          return entries.length === 4 && entries.every((e) => e.state === 'uploaded')
        } catch {
          return false
        }
      },
      20_000,
    )
    first.kill('SIGKILL')
    await first.exited
    const uploadsBefore = await accepted()
    await ensureWorker()
    const resumed = await run(['process', input, '--out', out, '-r', '--resume', '--master', cluster.address.master])
    expect(resumed.code).toBe(0)
    expect(resumed.stdout).toContain('4 done, 0 failed, 0 skipped of 4')
    expect(await accepted()).toBe(uploadsBefore)
    for (const [name, fixture] of Object.entries(FIXTURES)) await expectResult(join(out, name), fixture)
    // A third run with --resume has nothing left to do.
    expect((await run(['process', input, '--out', out, '-r', '--resume', '--master', cluster.address.master])).stdout).toContain(
      '0 done, 0 failed, 4 skipped of 4',
    )
  }, 60_000)

  test('Ctrl-C stops cleanly: nothing new started, what was left said, exit 130', async () => {
    await stopWorker()
    const input = join(dir.path, 'interrupted')
    writeTree(input)
    const out = join(dir.path, 'interrupted-out')
    const proc = cli(['process', input, '--out', out, '-r', '--master', cluster.address.master])
    await waitFor('the uploads', () => existsSync(join(out, MANIFEST_NAME)) && readFileSync(join(out, MANIFEST_NAME), 'utf8').includes('uploaded'), 20_000)
    await Bun.sleep(300)
    proc.kill('SIGINT')
    const [stdout, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    expect(code).toBe(130)
    expect(stdout).toMatch(/interrupted: \d+ uploaded and not yet downloaded, \d+ not started; .*--resume/)
    await ensureWorker()
  }, 60_000)

  test('on a terminal: a bar for the batch and a line per file in flight', async () => {
    await ensureWorker()
    const input = join(dir.path, 'terminal')
    writeTree(input)
    const out = join(dir.path, 'terminal-out')
    const typescript = join(dir.path, 'typescript.txt')
    const command = `bun run src/cli.ts process ${input} --out ${out} -r --master ${cluster.address.master}`
    // script(1) gives the client a pseudo-terminal and records what it drew.
    const proc = Bun.spawn(['script', '-qfec', command, typescript], {
      cwd: REPO_ROOT,
      env: { ...process.env, PIXMILL_TOKEN: '', COLUMNS: '160' },
      stdout: 'ignore',
      stderr: 'ignore',
    })
    expect(await proc.exited).toBe(0)
    const drawn = readFileSync(typescript, 'utf8').replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[a-zA-Z]`, 'g'), '')
    expect(drawn).toMatch(/█+░* \d\/4 uploaded \d, processing \d, done \d, failed 0 \| [\d.]+ images\/s/)
    expect(drawn).toMatch(/\d+% (uploading|processing|downloading) +(rgb|rgba16|nested\/palette|nested\/deeper\/grey)\.png/)
    expect(drawn).toContain('4 done, 0 failed, 0 skipped of 4')
  }, 60_000)
})

describe('e2e: pixmill status, get, retry, delete', () => {
  test('a task’s status and image; retry and delete want the operator token; bad usage is exit 2', async () => {
    await ensureWorker()
    const id = await cluster.uploadOk(FIXTURES['rgb.png']!.png)
    await cluster.waitState(id, [2])
    const master = ['--master', cluster.address.master]
    const status = await run(['status', String(id), ...master])
    expect(status.code).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({ id, state: 2, stateName: 'finished' })
    const file = join(dir.path, 'got.png')
    expect((await run(['get', String(id), '-o', file, ...master])).code).toBe(0)
    await expectResult(file, FIXTURES['rgb.png']!)
    const broken = await cluster.uploadOk(BROKEN)
    await cluster.waitState(broken, [3])
    const refused = await run(['retry', String(broken), ...master])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/401/)
    expect((await run(['retry', String(broken), '--token', TOKEN, ...master])).stdout).toContain(`task ${broken}: queued again`)
    expect((await run(['delete', String(id), ...master], { PIXMILL_TOKEN: TOKEN })).stdout).toContain(`task ${id}: deleted`)
    expect((await run(['status', String(id), ...master])).code).toBe(1)
    for (const args of [
      ['process', dir.path],
      ['status', 'x'],
      ['get'],
      ['process', '/no/such/folder', '--out', dir.path],
      ['status', '1', '--master', 'nohost'],
      ['frobnicate'],
    ]) {
      expect((await run(args)).code).toBe(2)
    }
    expect((await run(['--help'])).code).toBe(0)
  }, 60_000)
})
