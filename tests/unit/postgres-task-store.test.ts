// The PostgreSQL task store against the TaskStore contract, plus what only PostgreSQL has: many instances, an outage, a crash.

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { SQL } from 'bun'
import { SCHEMA_VERSION } from '../../src/roles/database/postgres-schema.ts'
import { openPostgresTaskStore, type PostgresTaskStoreOptions } from '../../src/roles/database/postgres-task-store.ts'
import type { TaskStore, TaskStoreOptions } from '../../src/roles/database/task-store.ts'
import { DependencyUnavailable } from '../../src/shared/errors.ts'
import { type PostgresServer, postgresInstalled, startPostgresServer } from '../helpers/postgres-server.ts'
import { taskHistoryContract } from '../helpers/task-history-contract.ts'
import { taskStoreContract } from '../helpers/task-store-contract.ts'

/**
 * The contract opens stores synchronously; this one opens asynchronously, so each method waits for the opening.
 * Errors of the opening surface on the first call, where the contract sees them.
 */
function whenOpen(opening: Promise<TaskStore>): TaskStore {
  opening.catch(() => {})
  return {
    create: async (o) => (await opening).create(o),
    get: async (id) => (await opening).get(id),
    getMany: async (ids) => (await opening).getMany(ids),
    activate: async (id) => (await opening).activate(id),
    drop: async (id) => (await opening).drop(id),
    claim: async () => (await opening).claim(),
    claimable: async () => (await opening).claimable(),
    renew: async (id, token) => (await opening).renew(id, token),
    finish: async (id, token) => (await opening).finish(id, token),
    release: async (id, token) => (await opening).release(id, token),
    fail: async (id, error, token) => (await opening).fail(id, error, token),
    retry: async (id) => (await opening).retry(id),
    setState: async (id, state) => (await opening).setState(id, state),
    async *list() {
      yield* (await opening).list()
    },
    recent: async (o) => (await opening).recent(o),
    countByState: async () => (await opening).countByState(),
    markForRemoval: async (o) => (await opening).markForRemoval(o),
    markOneForRemoval: async (id) => (await opening).markOneForRemoval(id),
    releaseRemoval: async (ids) => (await opening).releaseRemoval(ids),
    removeMarked: async (ids) => (await opening).removeMarked(ids),
    events: async (id) => (await opening).events(id),
    figures: async (o) => (await opening).figures(o),
    sampleQueue: async () => (await opening).sampleQueue(),
    onLeasesExpired: (listener) => void opening.then((store) => store.onLeasesExpired(listener)),
    healthy: async () => (await opening).healthy(),
    close: async () => (await opening).close(),
  }
}

// The server is part of the test setup (.ci/run installs it): without it these tests fail, they do not skip.
if (!postgresInstalled()) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)')

let server: PostgresServer
/** A fresh, empty database for each test (tests run one after the other and close their stores). */
const freshDatabase = () => server.emptyDatabase()
// Counts exact at every call here; the shared count of a busy system has its own test.
const options = (): PostgresTaskStoreOptions => ({ leaseSeconds: 60, maxAttempts: 3, countsCacheMs: 0 })

// initdb takes about a second, more on a busy machine: above bun's default 5 s hook timeout there.
beforeAll(async () => {
  server = await startPostgresServer()
}, 60_000)
afterAll(async () => {
  await server?.destroy()
}, 30_000)

const postgresEnv = () => {
  // Every open() within one test reaches the same database, so "close and open again" sees the same tasks.
  const url = freshDatabase()
  return { open: (o: TaskStoreOptions) => whenOpen(url.then((u) => openPostgresTaskStore(u, { ...o, countsCacheMs: 0 }))), cleanup: () => {} }
}
taskStoreContract('PostgreSQL', postgresEnv)
taskHistoryContract('PostgreSQL', postgresEnv)

describe('PostgreSQL task store: several instances on one database', () => {
  test('200 concurrent claims over 100 tasks, spread over three instances, hand each task out exactly once', async () => {
    const url = await freshDatabase()
    const stores = await Promise.all([0, 1, 2].map(() => openPostgresTaskStore(url, options())))
    try {
      for (let i = 0; i < 100; i++) await stores[i % 3]!.create()
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => stores[i % 3]!.claim()))
      const ids = results.flatMap((r) => (r.claim ? [r.claim.task.id] : []))
      expect(ids.length).toBe(100)
      expect([...new Set(ids)].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
      expect(new Set(results.flatMap((r) => (r.claim ? [r.claim.leaseToken] : []))).size).toBe(100)
      expect(await stores[0]!.countByState()).toEqual({ 0: 0, 1: 100, 2: 0, 3: 0 })
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  test('an expired lease is put back once even when three instances claim at the same moment', async () => {
    const url = await freshDatabase()
    let clock = 1_700_000_000_000
    const stores = await Promise.all([0, 1, 2].map(() => openPostgresTaskStore(url, { ...options(), now: () => clock })))
    try {
      for (let i = 0; i < 30; i++) await stores[0]!.create()
      for (let i = 0; i < 30; i++) await stores[i % 3]!.claim()
      let expired = 0
      for (const store of stores) store.onLeasesExpired((n) => (expired += n))
      clock += 61_000
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => stores[i % 3]!.claim()))
      expect(expired).toBe(30)
      const ids = results.flatMap((r) => (r.claim ? [r.claim.task.id] : []))
      expect(new Set(ids).size).toBe(ids.length)
      for await (const task of stores[1]!.list()) expect(task.attempts).toBe(1)
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  test('expired leases seen by reads on three instances at once are put back once each, with no deadlock', async () => {
    const url = await freshDatabase()
    let clock = 1_700_000_000_000
    const stores = await Promise.all([0, 1, 2].map(() => openPostgresTaskStore(url, { ...options(), now: () => clock })))
    try {
      let expired = 0
      for (const store of stores) store.onLeasesExpired((n) => (expired += n))
      for (let i = 0; i < 40; i++) await stores[0]!.create()
      for (let i = 0; i < 40; i++) await stores[i % 3]!.claim()
      clock += 61_000
      const reads = await Promise.all(
        Array.from({ length: 30 }, (_, i) => {
          const store = stores[i % 3]!
          return i % 3 === 0 ? store.countByState() : i % 3 === 1 ? store.recent({ state: 0, limit: 50 }).then((t) => t.length) : store.get(i)
        }),
      )
      expect(expired).toBe(40)
      // Every read already saw the tasks back: no answer shows one in progress.
      for (const read of reads) {
        if (typeof read === 'number') expect(read).toBe(40)
        else if (read && 'state' in read) expect(read).toMatchObject({ state: 0, attempts: 1 })
        else expect(read).toEqual({ 0: 40, 1: 0, 2: 0, 3: 0 })
      }
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  test('three instances sweeping at once never take the same task, and together take every one due', async () => {
    const url = await freshDatabase()
    let clock = 1_700_000_000_000
    const stores = await Promise.all([0, 1, 2].map(() => openPostgresTaskStore(url, { ...options(), now: () => clock })))
    try {
      for (let i = 0; i < 90; i++) await stores[0]!.create()
      for (let i = 0; i < 90; i++) {
        const claim = (await stores[i % 3]!.claim()).claim!
        await stores[i % 3]!.finish(claim.task.id, claim.leaseToken)
      }
      clock += 10_000
      const batches = await Promise.all(Array.from({ length: 12 }, (_, i) => stores[i % 3]!.markForRemoval({ endedBefore: clock, heldBefore: 0, limit: 10 })))
      const taken = batches.flat()
      expect(new Set(taken).size).toBe(taken.length)
      const rest = await stores[0]!.markForRemoval({ endedBefore: clock, heldBefore: 0, limit: 100 })
      expect([...taken, ...rest].sort((a, b) => a - b)).toEqual(Array.from({ length: 90 }, (_, i) => i))
      expect(await stores[1]!.removeMarked([...taken, ...rest])).toBe(90)
    } finally {
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  test('one count is shared for countsCacheMs by every caller of an instance, then counted again; its own writes count at once', async () => {
    const url = await freshDatabase()
    let clock = 1_700_000_000_000
    const store = await openPostgresTaskStore(url, { ...options(), countsCacheMs: 2000, now: () => clock })
    const other = await openPostgresTaskStore(url, options())
    try {
      await store.create()
      expect((await store.countByState())[0]).toBe(1)
      // A task made through another instance shows once the cache has aged...
      await other.create()
      expect((await store.countByState())[0]).toBe(1)
      clock += 2001
      expect((await store.countByState())[0]).toBe(2)
      // ...one made through this instance at once.
      await store.create()
      expect((await store.countByState())[0]).toBe(3)
    } finally {
      await Promise.all([store.close(), other.close()])
    }
  })

  test('four instances starting at once on an empty database migrate it once, and share one id counter', async () => {
    const url = await freshDatabase()
    const stores = await Promise.all([0, 1, 2, 3].map(() => openPostgresTaskStore(url, options())))
    const sql = new SQL(url, { max: 1 })
    try {
      // Without the advisory lock, racing starts fail on the catalogues or record the schema version twice.
      expect(await sql`SELECT version FROM pixmill_schema`).toEqual([{ version: SCHEMA_VERSION }])
      const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => stores[i % 4]!.create()))
      expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i))
      // A later start finds the schema current and changes nothing.
      const later = await openPostgresTaskStore(url, options())
      expect((await later.countByState())[0]).toBe(20)
      await later.close()
    } finally {
      await sql.close()
      await Promise.all(stores.map((s) => s.close()))
    }
  })

  test('a database at schema 2 gets the key and trace columns (migrations 3 and 4) at the next start; its tasks read as before', async () => {
    const url = await freshDatabase()
    const first = await openPostgresTaskStore(url, options())
    const old = await first.create()
    await first.close()
    const sql = new SQL(url, { max: 1 })
    try {
      // The state a release before private results left behind.
      await sql`ALTER TABLE pixmill_tasks DROP COLUMN key_hash`
      await sql`ALTER TABLE pixmill_tasks DROP COLUMN trace_parent`
      await sql`UPDATE pixmill_schema SET version = 2`
      const store = await openPostgresTaskStore(url, options())
      try {
        expect(await sql`SELECT version FROM pixmill_schema`).toEqual([{ version: SCHEMA_VERSION }])
        expect(SCHEMA_VERSION).toBe(5)
        expect(await store.get(old)).toMatchObject({ keyHash: null, traceParent: null })
        expect((await store.get(await store.create({ keyHash: 'ef'.repeat(32) })))?.keyHash).toBe('ef'.repeat(32))
      } finally {
        await store.close()
      }
    } finally {
      await sql.close()
    }
  })
})

describe('PostgreSQL task store: timelines', () => {
  test('a database at schema 4 gets timelines and figures (migration 5) at the next start; its tasks carry on', async () => {
    const url = await freshDatabase()
    let clock = Date.UTC(2026, 0, 1)
    const first = await openPostgresTaskStore(url, { ...options(), now: () => clock })
    const done = await first.create()
    const working = await first.create()
    const waiting = await first.create()
    await first.claim()
    await first.finish(done)
    const claim = (await first.claim()).claim!
    await first.close()
    const sql = new SQL(url, { max: 1 })
    try {
      // The state the release before timelines left behind.
      await sql.unsafe(`
        DROP TABLE pixmill_task_events, pixmill_task_minutes, pixmill_queue_samples;
        DROP FUNCTION pixmill_count_event();
        ALTER TABLE pixmill_tasks DROP COLUMN claimed_at;
        UPDATE pixmill_schema SET version = 4;`)
      // Within the lease of the claim made before.
      clock += 30_000
      const store = await openPostgresTaskStore(url, { ...options(), now: () => clock })
      try {
        expect(await sql`SELECT version FROM pixmill_schema`).toEqual([{ version: 5 }])
        // A task from before has a `created` made from its creation time, and no other event from before.
        expect(await store.events(done)).toEqual([{ at: Date.UTC(2026, 0, 1), event: 'created' }])
        // Claimed before: its finish has no processing time to tell.
        await store.finish(working, claim.leaseToken)
        expect((await store.events(working))?.at(-1)).toEqual({ at: clock, event: 'finished', attempt: 1 })
        await store.claim()
        expect((await store.events(waiting))?.map((e) => e.event)).toEqual(['created', 'claimed'])
        expect((await store.figures({ from: 0, to: clock })).minutes).toMatchObject([{ minute: Date.UTC(2026, 0, 1), created: 0, finished: 1 }])
      } finally {
        await store.close()
      }
    } finally {
      await sql.close()
    }
  })

  test('events and figures go where removal and pruning say: no event outlives its task', async () => {
    const url = await freshDatabase()
    const store = await openPostgresTaskStore(url, options())
    const sql = new SQL(url, { max: 1 })
    try {
      const ids = [await store.create(), await store.create()]
      for (const id of ids) {
        const claim = (await store.claim()).claim!
        await store.finish(id, claim.leaseToken)
      }
      await store.markOneForRemoval(ids[0]!)
      await store.removeMarked([ids[0]!])
      expect(await sql`SELECT DISTINCT task_id::int AS id FROM pixmill_task_events`).toEqual([{ id: ids[1] }])
    } finally {
      await sql.close()
      await store.close()
    }
  })
})

/** Stopping (a checkpoint with fsync on) and restarting take seconds on a busy machine. */
const OUTAGE_TIMEOUT_MS = 30_000

describe('PostgreSQL task store: outages and crashes', () => {
  test(
    'with PostgreSQL down, calls fail quickly with 503 and healthy() is false; when it is back, everything works',
    async () => {
      const store = await openPostgresTaskStore(await freshDatabase(), options())
      try {
        const id = await store.create()
        await server.stop()
        const started = performance.now()
        for (const call of [() => store.create(), () => store.claim(), () => store.get(id), () => store.countByState()]) {
          const error = await call().then(
            () => undefined,
            (e: unknown) => e,
          )
          expect(error).toBeInstanceOf(DependencyUnavailable)
          expect((error as DependencyUnavailable).status).toBe(503)
        }
        expect(await store.healthy()).toBe(false)
        expect(performance.now() - started).toBeLessThan(3000)
        await server.restart()
        expect(await store.healthy()).toBe(true)
        expect((await store.claim()).claim?.task.id).toBe(id)
        expect(await store.create()).toBe(id + 1)
      } finally {
        await store.close()
      }
    },
    OUTAGE_TIMEOUT_MS,
  )

  test(
    'a hung PostgreSQL: calls fail with 503 after the operation deadline, healthy() is false within seconds',
    async () => {
      const url = await freshDatabase()
      // Migrated first under the usual deadline: creating the schema on a busy machine can take longer than the 300 ms
      // tested here, which is about calls, not about the start (the run with every test at once failed here so).
      await (await openPostgresTaskStore(url, options())).close()
      const store = await openPostgresTaskStore(url, { ...options(), operationTimeoutMs: 300 })
      try {
        await store.create()
        server.freeze()
        const started = performance.now()
        expect(
          await store.claim().then(
            () => undefined,
            (e: unknown) => e,
          ),
        ).toBeInstanceOf(DependencyUnavailable)
        expect(performance.now() - started).toBeLessThan(1000)
        expect(await store.healthy()).toBe(false)
        expect(performance.now() - started).toBeLessThan(4000)
        server.thaw()
        // The claim that timed out may still have gone through once the server woke: the task is handed out once at most.
        const again = await store.claim()
        expect(again.claim === undefined || again.claim.task.id === 0).toBe(true)
        expect(await store.healthy()).toBe(true)
      } finally {
        server.thaw()
        await store.close()
      }
    },
    OUTAGE_TIMEOUT_MS,
  )

  test(
    'a store opened while PostgreSQL is down rejects with 503 instead of hanging',
    async () => {
      const url = await freshDatabase()
      await server.stop()
      try {
        const error = await openPostgresTaskStore(url, options()).then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toBeInstanceOf(DependencyUnavailable)
      } finally {
        await server.restart()
      }
    },
    OUTAGE_TIMEOUT_MS,
  )

  test(
    'acknowledged tasks, states and the id counter survive kill -9 of PostgreSQL and its restart',
    async () => {
      const url = await freshDatabase()
      const store = await openPostgresTaskStore(url, options())
      try {
        for (let i = 0; i < 5; i++) await store.create()
        const claim = (await store.claim()).claim!
        await store.finish(claim.task.id, claim.leaseToken)
        await store.claim()
        await store.setState(4, 2)
        await server.kill9()
        await server.restart()
        const reopened = await openPostgresTaskStore(url, options())
        try {
          const states: number[] = []
          for await (const task of reopened.list()) states.push(task.state)
          expect(states).toEqual([2, 1, 0, 0, 2])
          expect(await reopened.create()).toBe(5)
          expect((await reopened.claim()).claim?.task.id).toBe(2)
          // The store opened before the crash recovers on its own too.
          expect(await store.healthy()).toBe(true)
          expect((await store.get(5))?.state).toBe(0)
        } finally {
          await reopened.close()
        }
      } finally {
        await store.close()
      }
    },
    OUTAGE_TIMEOUT_MS,
  )
})
