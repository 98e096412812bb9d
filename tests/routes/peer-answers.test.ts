// Peers that answer nonsense: the calling role answers 502 with an `Error:` naming the peer and what was wrong, and
// goes on serving. The peers here are real Elysia apps answering bad JSON or wrong shapes.
import { describe, expect, test } from 'bun:test'
import { type AnyElysia, Elysia } from 'elysia'
import { createDatabaseClient } from '../../src/clients/database-client.ts'
import { createMasterWorkerClient } from '../../src/clients/master-client.ts'
import { createMasterPublicClient } from '../../src/clients/master-public-client.ts'
import { fixedPeer } from '../../src/clients/peer-address.ts'
import { createStorageClient } from '../../src/clients/storage-client.ts'
import { createFrontendApp } from '../../src/roles/frontend/app.ts'
import { createMasterApp } from '../../src/roles/master/app.ts'
import { DependencyUnavailable } from '../../src/shared/errors.ts'
import { call, inProcess } from '../helpers/http.ts'
import { quietDeps } from '../helpers/silent.ts'

const json = (body: string) => new Response(body, { headers: { 'content-type': 'application/json' } })
const TASK = { id: 3, state: 2, stateName: 'finished', attempts: 0, createdAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:00.000Z' }

/** A database that answers every read of the master with `answers[path]`. */
function nonsenseDatabase(answers: Record<string, string>) {
  const app = new Elysia()
  for (const [path, body] of Object.entries(answers)) {
    app.get(path, () => json(body))
    app.post(path, () => json(body))
  }
  return app
}

function masterOver(database: AnyElysia) {
  const storage = new Elysia()
  return createMasterApp({
    database: createDatabaseClient(fixedPeer('databaseAddress', 'database.local'), inProcess(database)),
    storage: createStorageClient(fixedPeer('storageAddress', 'storage.local'), inProcess(storage)),
    maxUploadBytes: 1024,
    dependenciesHealthy: async () => ({ database: true, storage: true }),
    ...quietDeps('master'),
  })
}

function frontendOver(master: AnyElysia) {
  return createFrontendApp({
    master: createMasterPublicClient(fixedPeer('masterAddress', 'master.local'), inProcess(master)),
    maxUploadBytes: 1024,
    ...quietDeps('frontend'),
  })
}

describe('master: a database that answers nonsense', () => {
  test('a task with a state that is not a number is a 502 naming the database and the field, on every read of it', async () => {
    const master = masterOver(nonsenseDatabase({ '/getById': JSON.stringify({ ...TASK, state: 'done' }) }))
    for (const path of ['/status?id=3', '/isReady?id=3', '/get?id=3']) {
      const answer = await call(master, 'GET', path)
      expect(answer.status).toBe(502)
      expect(answer.text).toStartWith('Error: The database answered /getById with a body that is not a task: /state')
    }
    // Still serving.
    expect((await call(master, 'GET', '/livez')).status).toBe(200)
  })

  test('numbers sent as text are not numbers (a schema that coerces query strings would take them)', async () => {
    const master = masterOver(nonsenseDatabase({ '/getById': JSON.stringify({ ...TASK, id: '3', state: '2' }) }))
    const answer = await call(master, 'GET', '/isReady?id=3')
    expect(answer.status).toBe(502)
    expect(answer.text).toContain('not a task')
  })

  test('a body that is not JSON is a 502 that says so', async () => {
    const master = masterOver(nonsenseDatabase({ '/getById': '<html>gateway</html>', '/counts': 'ok', '/tasks': '' }))
    expect(await call(master, 'GET', '/status?id=3')).toMatchObject({
      status: 502,
      text: 'Error: The database answered /getById with a body that is not JSON: <html>gateway</html>',
    })
    expect(await call(master, 'GET', '/counts')).toMatchObject({ status: 502, text: 'Error: The database answered /counts with a body that is not JSON: ok' })
    expect(await call(master, 'GET', '/tasks')).toMatchObject({
      status: 502,
      text: 'Error: The database answered /tasks with a body that is not JSON: (empty)',
    })
  })

  test('wrong shapes of the lists, counts, timelines and history are 502s', async () => {
    const master = masterOver(
      nonsenseDatabase({
        '/tasks': JSON.stringify([TASK, { id: 4 }]),
        '/counts': JSON.stringify({ 'not-started': 1, finished: 2 }),
        '/events': JSON.stringify([{ at: 'yesterday', event: 'created' }]),
        '/history': JSON.stringify({ since: 0 }),
      }),
    )
    for (const [path, what] of [
      ['/tasks', 'a list of tasks: /1/'],
      ['/counts', 'the counts of tasks: /in-progress'],
      ['/events?id=3', 'a task’s events: /0/at'],
      ['/history', 'the history: /'],
    ] as const) {
      const answer = await call(master, 'GET', path)
      expect(answer.status).toBe(502)
      expect(answer.text).toContain(`with a body that is not ${what}`)
    }
  })

  test('a claim that is not a task is a 502 to the worker, not passed on as a task', async () => {
    const master = masterOver(nonsenseDatabase({ '/getNewTask': JSON.stringify({ task: 7 }), '/renewTask': '{"id":7}' }))
    expect(await call(master, 'POST', '/getNewTask')).toMatchObject({
      status: 502,
      text: expect.stringContaining('The database answered /getNewTask with a body that is not a claimed task: /id'),
    })
    expect((await call(master, 'POST', '/renewTask?id=7&lease=x')).status).toBe(502)
  })

  test('an original database’s {id, state} is still a task, and an original claim still a claim', async () => {
    const master = masterOver(nonsenseDatabase({ '/getById': '{"id":3,"state":2}', '/getNewTask': '{"id":3,"state":1}' }))
    expect(await call(master, 'GET', '/isReady?id=3')).toMatchObject({ status: 200, text: '1' })
    expect(await call(master, 'POST', '/getNewTask')).toMatchObject({ status: 200, text: '{"id":3,"state":1}' })
  })
})

describe('frontend: a master that answers nonsense', () => {
  test('a status, readiness, list or count that does not fit is a 502 naming the master', async () => {
    const master = new Elysia().get('/status', () => json(JSON.stringify({ ...TASK, attempts: -1 }))).get('/isReady', () => 'maybe')
    const frontend = frontendOver(master)
    expect(await call(frontend, 'GET', '/api/status?id=3')).toMatchObject({
      status: 502,
      text: expect.stringContaining('Error: The master answered /status with a body that is not a task: /attempts'),
    })
    expect(await call(frontend, 'GET', '/isReady?id=3')).toMatchObject({
      status: 502,
      text: 'Error: The master answered /isReady with a body that is not 0 or 1: maybe',
    })
    expect((await call(frontend, 'GET', '/livez')).status).toBe(200)
  })
})

describe('worker client: a master that answers nonsense', () => {
  test('a claim without a usable id is DependencyUnavailable (502), which the loop logs and waits on', async () => {
    for (const body of ['{"id":-1}', '{"id":1.5}', '[]', 'null', '{"id":1,"leaseToken":7}']) {
      const master = new Elysia().post('/getNewTask', () => json(body))
      const client = createMasterWorkerClient(fixedPeer('masterAddress', 'master.local'), inProcess(master))
      const error = await client.getNewTask().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(DependencyUnavailable)
      expect((error as DependencyUnavailable).status).toBe(502)
      expect((error as Error).message).toStartWith('The master answered /getNewTask with a body that is not a task')
    }
  })
})
