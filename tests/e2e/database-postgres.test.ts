// Two database role processes on one PostgreSQL: one set of tasks, claims never handed out twice, an outage survived.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { type PostgresServer, postgresInstalled, startPostgresServer } from '../helpers/postgres-server.ts'
import { freePort, httpText, type RoleProcess, spawnRole, waitHealthy } from '../helpers/processes.ts'
import { tempDir } from '../helpers/temp.ts'
import { waitFor } from '../helpers/wait-for.ts'

// The server is part of the test setup (.ci/run installs it): without it these tests fail, they do not skip.
if (!postgresInstalled()) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)')
const dir = tempDir('pixmill-e2e-pg-')
const kvAddress = `127.0.0.1:${freePort()}`
const dbAddresses = [`127.0.0.1:${freePort()}`, `127.0.0.1:${freePort()}`] as const
let server: PostgresServer
let kv: RoleProcess
let databases: RoleProcess[] = []

const post = (address: string, path: string) => httpText(address, path, { method: 'POST' })

// initdb and three processes take a few seconds, more on a busy machine: above bun's default 5 s hook timeout.
beforeAll(async () => {
  server = await startPostgresServer()
  kv = await spawnRole('kv', [kvAddress], { dataDir: dir.path, healthAt: kvAddress })
  // Both at once, on an empty database: they race to migrate it.
  databases = await Promise.all(
    dbAddresses.map((address, i) =>
      spawnRole('database', [address, kvAddress], {
        // Each its own folder (for its log); neither keeps tasks there.
        dataDir: mkdirSync(`${dir.path}/db${i}`, { recursive: true })!,
        healthAt: address,
        // A short time to live, so that the other instance takes over the shared figures within the test.
        env: { PIXMILL_DATABASE_URL: server.url, PIXMILL_LEASE_SECONDS: '60', PIXMILL_REGISTRATION_TTL_SECONDS: '3' },
      }),
    ),
  )
}, 60_000)
afterAll(async () => {
  await Promise.allSettled([kv?.kill9(), ...databases.map((d) => d.kill9())])
  await server?.destroy()
  dir.remove()
}, 30_000)

describe('e2e: two database processes on one PostgreSQL', () => {
  test('both say in their log that they keep tasks in PostgreSQL, and both register in kv', async () => {
    for (const db of databases) expect(await Bun.file(db.logFile).text()).toContain('task store: PostgreSQL')
    const list = (await httpText(kvAddress, '/list')).text
    for (const address of dbAddresses) expect(list).toContain(`databaseAddress/${address}`)
  })

  test('tasks created through one are claimed and finished through the other', async () => {
    const [a, b] = dbAddresses
    const ids = [(await post(a, '/newTask')).text, (await post(b, '/newTask')).text, (await post(a, '/newTask')).text]
    expect(ids).toEqual(['0', '1', '2'])
    const claim = JSON.parse((await post(b, '/getNewTask')).text)
    expect(claim).toMatchObject({ id: 0, state: 1 })
    expect((await post(a, `/finishTask?id=0&lease=${claim.leaseToken}`)).text).toBe('success')
    expect(JSON.parse((await httpText(b, '/getById?id=0')).text).state).toBe(2)
    // A stale token is refused by either instance.
    expect((await post(b, `/finishTask?id=0&lease=${claim.leaseToken}`)).status).toBe(409)
    expect(JSON.parse((await post(a, '/getNewTask')).text).id).toBe(1)
    expect(JSON.parse((await post(b, '/getNewTask')).text).id).toBe(2)
    expect((await post(a, '/getNewTask')).status).toBe(404)
  })

  test('200 concurrent claims through both instances hand each of 100 tasks out exactly once', async () => {
    const created = await Promise.all(Array.from({ length: 100 }, (_, i) => post(dbAddresses[i % 2]!, '/newTask')))
    const fresh = created.map((r) => Number(r.text)).sort((x, y) => x - y)
    expect(new Set(fresh).size).toBe(100)
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post(dbAddresses[i % 2]!, '/getNewTask')))
    const claimed = answers.filter((r) => r.status === 200).map((r) => JSON.parse(r.text).id as number)
    expect(answers.filter((r) => r.status !== 200).every((r) => r.status === 404 && r.text.startsWith('Error:'))).toBe(true)
    expect(claimed.length).toBe(100)
    expect([...new Set(claimed)].sort((x, y) => x - y)).toEqual(fresh)
    const counts = JSON.parse((await httpText(dbAddresses[1], '/counts')).text)
    expect(counts).toMatchObject({ 'not-started': 0, 'in-progress': 102 }) // two left claimed by the test before
  })

  test('PostgreSQL down: both answer 503 on /health and on calls; back: both serve again without a restart', async () => {
    await server.stop()
    try {
      for (const address of dbAddresses) {
        expect((await httpText(address, '/health')).status).toBe(503)
        const answer = await post(address, '/newTask')
        expect(answer.status).toBe(503)
        expect(answer.text).toStartWith('Error:')
      }
    } finally {
      await server.restart()
    }
    for (const address of dbAddresses) await waitHealthy(address, 10_000)
    const id = Number((await post(dbAddresses[0], '/newTask')).text)
    expect(JSON.parse((await post(dbAddresses[1], '/getNewTask')).text).id).toBe(id)
    // The outage is in the log once, and so is its end (the 503 bodies say only "unavailable"). The log arrives
    // through a pipe, possibly after the answer: wait for it.
    const log = await waitFor(
      'the end of the outage in the log',
      async () => {
        const text = await Bun.file(databases[1]!.logFile).text()
        return text.includes('available again') ? text : undefined
      },
      5000,
    )
    expect(log.match(/PostgreSQL is unavailable/g)?.length).toBe(1)
    expect(log).toContain('PostgreSQL is available again')
  })

  test('a claim held by one instance gets a task created through the other within moments', async () => {
    const [a, b] = dbAddresses
    // Drain whatever an earlier test left claimable.
    while ((await post(a, '/getNewTask')).status === 200);
    const held = post(a, '/getNewTask?wait=10')
    // Time for the held claim to reach its database process, which is what this test is about.
    await Bun.sleep(200)
    const created = performance.now()
    const id = Number((await post(b, '/newTask')).text)
    const answer = await held
    expect(answer.status).toBe(200)
    expect(JSON.parse(answer.text).id).toBe(id)
    // The other instance hears of it by its short poll (250 ms), not by the change itself.
    expect(performance.now() - created).toBeLessThan(2000)
    expect((await post(b, `/finishTask?id=${id}`)).text).toBe('success')
  })

  test('tasks per state are exported by one instance only, so a sum over both is true; the other takes over when it dies', async () => {
    const scrape = async (address: string) => (await httpText(address, '/metrics')).text
    const tasksIn = (text: string) => [...text.matchAll(/^pixmill_tasks\{[^}]*\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0)
    // The lowest address reports; the sum over both instances counts each task once.
    const reporter = dbAddresses[0] < dbAddresses[1] ? 0 : 1
    const countsOf = async (address: string) =>
      Object.values(JSON.parse((await httpText(address, '/counts')).text) as Record<string, number>).reduce((a, b) => a + b, 0)
    // Asked of the reporter: its /counts and its gauges share one count of the table (each instance keeps its own for 2 s).
    const total = await countsOf(dbAddresses[reporter])
    const texts = await Promise.all(dbAddresses.map(scrape))
    expect(texts.map((text) => /^pixmill_tasks_reporting\{[^}]*\} 1$/m.test(text))).toEqual([reporter === 0, reporter === 1])
    expect(texts.map(tasksIn)).toEqual(reporter === 0 ? [total, 0] : [0, total])
    await databases[reporter]!.kill9()
    const other = dbAddresses[1 - reporter]!
    const text = await waitFor(
      'the other instance to take over the shared figures',
      async () => {
        const scraped = await scrape(other)
        return /^pixmill_tasks_reporting\{[^}]*\} 1$/m.test(scraped) ? scraped : undefined
      },
      20_000,
      250,
    )
    expect(tasksIn(text)).toBe(await countsOf(other))
  }, 30_000)
})
