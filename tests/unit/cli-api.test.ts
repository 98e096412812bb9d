// The command-line client's calls: Retry-After honoured, refusals told apart from failures, an original master waited on.
import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CallFailed, createApi, Refused } from '../../src/cli/api.ts'
import { freePort } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'

const servers: Array<{ stop: (force?: boolean) => unknown }> = []
const dirs: ReturnType<typeof tempDir>[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true)
  for (const d of dirs.splice(0)) d.remove()
})

/** A master answering `answers` in turn (the last one for ever after), recording the paths asked and their task keys. */
function fakeMaster(answers: Array<() => Response>) {
  const port = freePort()
  const paths: string[] = []
  const keys: Array<string | null> = []
  let turn = 0
  servers.push(
    Bun.serve({
      port,
      hostname: '127.0.0.1',
      async fetch(request) {
        paths.push(new URL(request.url).pathname + new URL(request.url).search)
        keys.push(request.headers.get('x-task-key'))
        await request.arrayBuffer()
        return answers[Math.min(turn++, answers.length - 1)]!()
      },
    }),
  )
  return { master: `127.0.0.1:${port}`, paths, keys }
}

function pngFile(): string {
  const dir = tempDir()
  dirs.push(dir)
  const path = join(dir.path, 'a.png')
  writeFileSync(path, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]))
  return path
}

const fast = { backoffMs: { initial: 1, max: 2 } }

describe('cli api', () => {
  test('an upload told to come back later (503 or 429 with Retry-After) is sent again, and its id answered', async () => {
    const busy = (status: number) => () => new Response('Error: busy', { status, headers: { 'retry-after': '0' } })
    const { master, paths } = fakeMaster([busy(503), busy(429), () => new Response('17')])
    const sent: number[] = []
    expect(await createApi({ master, ...fast }).upload(pngFile(), (n) => sent.push(n))).toEqual({ id: 17 })
    expect(paths).toEqual(['/new', '/new', '/new'])
    expect(sent.at(-1)).toBe(11)
  })

  test('a 4xx is a refusal with the master’s reason; 5xx that never pass end in a failure after a few tries', async () => {
    const refused = fakeMaster([() => new Response('Error: Not a valid PNG: bad CRC.', { status: 400 })])
    const error = await createApi({ master: refused.master, ...fast })
      .upload(pngFile())
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Refused)
    expect((error as Error).message).toBe('Not a valid PNG: bad CRC.')
    const failing = fakeMaster([() => new Response('Error: storage down', { status: 502 })])
    const failed = await createApi({ master: failing.master, tries: 3, ...fast })
      .upload(pngFile())
      .catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(CallFailed)
    expect(failing.paths.length).toBe(3)
  })

  test('an original master (no /wait) is waited on with /isReady', async () => {
    const port = freePort()
    let polls = 0
    servers.push(
      Bun.serve({
        port,
        hostname: '127.0.0.1',
        fetch(request) {
          const path = new URL(request.url).pathname
          if (path === '/isReady') return new Response(++polls >= 3 ? '1' : '0')
          return new Response('404 page not found\n', { status: 404 })
        },
      }),
    )
    const task = await createApi({ master: `127.0.0.1:${port}`, ...fast }).waitEnded(4, undefined, 5)
    expect(task).toEqual({ id: 4, state: 2, stateName: 'finished' })
    expect(polls).toBe(3)
  })

  test('the task key an upload answered is kept, and sent in X-Task-Key (never in the URL) on the wait, status and download', async () => {
    const KEY = 'k3y-Of_A-Private-Result-0123456'
    const done = JSON.stringify({ id: 9, state: 2, stateName: 'finished', attempts: 0 })
    const { master, paths, keys } = fakeMaster([
      () => new Response('9', { headers: { 'x-task-key': KEY } }),
      () => new Response(done),
      () => new Response(done),
      () => new Response(new Uint8Array([1, 2, 3])),
    ])
    const api = createApi({ master, ...fast })
    const uploaded = await api.upload(pngFile())
    expect(uploaded).toEqual({ id: 9, key: KEY })
    expect((await api.waitEnded(9, undefined, 5, uploaded.key)).state).toBe(2)
    expect((await api.status(9, undefined, uploaded.key)).state).toBe(2)
    const dest = join(`${pngFile()}.out`)
    expect(await api.download(9, dest, undefined, uploaded.key)).toBe(3)
    expect(keys).toEqual([null, KEY, KEY, KEY])
    expect(paths.join(' ')).not.toContain(KEY)
  })
})
