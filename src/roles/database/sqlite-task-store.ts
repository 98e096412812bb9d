// TaskStore on bun:sqlite (WAL): every acknowledged change is committed before the call returns.
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { sqlitePragmas } from '../../shared/durability.ts'
import { Conflict, NotFound } from '../../shared/errors.ts'
import { removalTransactions } from './sqlite-removal.ts'
import { migrateSqlite } from './sqlite-schema.ts'
import { prepareStatements, type Row, toMinuteFigures, toQueueSample, toTask } from './sqlite-statements.ts'
import { EVENT, eventText, parseEvents, setStateEvent } from './task-events.ts'
import {
  type ClaimResult,
  FIGURES_KEPT_MS,
  LEASE_RAN_OUT,
  REMOVAL_LEASE_MS,
  type Task,
  type TaskState,
  type TaskStore,
  type TaskStoreOptions,
} from './task-store.ts'

/** Opens (creating if needed) `<dir>/tasks.sqlite`. */
export function openSqliteTaskStore(dir: string, options: TaskStoreOptions): TaskStore {
  mkdirSync(dir, { recursive: true })
  const db = new Database(join(dir, 'tasks.sqlite'), { create: true, strict: true })
  // A committed change survives kill -9; with durability `power`, a power loss too (see durability.ts).
  db.exec(`${sqlitePragmas(options.durability)} PRAGMA busy_timeout = 5000;`)
  migrateSqlite(db)
  // One process keeps this file: removals begun before a restart were interrupted, and are taken up by the first sweep.
  db.prepare('UPDATE tasks SET removing_until = ?1 WHERE removing_until > ?1').run((options.now ?? Date.now)())
  const now = options.now ?? Date.now
  const leaseMs = options.leaseSeconds * 1000
  const max = options.maxAttempts

  const q = prepareStatements(db)

  /**
   * Rows that get() read, until a change through this store touches them: this process is the only writer of its file
   * (and every change below forgets the rows it may touch), so a poll of a task costs a Map lookup, not a query.
   */
  const rows = new Map<number, Row>()
  const ROWS_KEPT = 50_000
  const forget = (id: number) => void rows.delete(id)
  const remember = (row: Row) => {
    rows.delete(row.id)
    rows.set(row.id, row)
    if (rows.size > ROWS_KEPT) rows.delete(rows.keys().next().value!)
  }

  function existing(id: number): Row {
    const row = q.get.get(id)
    if (!row) throw new NotFound(`No task with id ${id}.`)
    return row
  }

  /** The row of a task in progress whose claim `leaseToken` (when given) still holds. */
  function inProgress(id: number, action: string, leaseToken: string | undefined): Row {
    const row = existing(id)
    if (row.state !== 1) {
      const why = row.state === 2 ? 'is already finished' : row.state === 3 ? 'has failed for good' : 'is not in progress'
      throw new Conflict(`Cannot ${action} task ${id}: it ${why}.`)
    }
    if (leaseToken !== undefined && leaseToken !== row.lease_token) {
      throw new Conflict(`Cannot ${action} task ${id}: the lease token does not match; the lease ran out and the task was claimed again.`)
    }
    return row
  }

  /** The processing time of a claim made at `claimedAt` that ends at `t` (none for a claim from before it was kept). */
  const processingMs = (claimedAt: number | null, t: number) => (claimedAt === null ? null : Math.max(0, t - claimedAt))

  const create = db.transaction((ready: boolean, requestId: string | null, keyHash: string | null, traceParent: string | null): number => {
    const id = q.nextId.get()!.next
    const t = now()
    // A held task becomes visible, and so created, when it is activated.
    q.insert.run(id, t, ready ? 1 : 0, requestId, keyHash, traceParent, ready ? eventText(t, EVENT.created) : null)
    return id
  })

  const expiryListeners = new Set<(count: number) => void>()
  const expire = db.transaction((t: number): number => {
    const expired = q.expire.all(t, max, LEASE_RAN_OUT)
    for (const { id } of expired) forget(id)
    return expired.length
  })

  /**
   * Puts back the tasks whose lease ran out, before any call reads or changes tasks: so every answer shows them back
   * at once. In a transaction of its own, so that a call that fails afterwards (a conflict) cannot undo it; nothing
   * runs between the two, as bun:sqlite calls are synchronous.
   */
  function expireLeases(t = now()): void {
    if (!q.anyExpired.get(t)) return
    const expired = expire.immediate(t)
    if (expired > 0) for (const listener of expiryListeners) listener(expired)
  }

  const claim = db.transaction((): ClaimResult => {
    const t = now()
    const leaseToken = crypto.randomUUID()
    const row = q.claim.get(t, t + leaseMs, leaseToken)
    if (row) forget(row.id)
    return { claim: row ? { task: toTask(row), leaseToken } : undefined }
  })

  const finish = db.transaction((id: number, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'finish', leaseToken)
    forget(id)
    const t = now()
    return toTask(q.finish.get(id, t, eventText(t, EVENT.finished, claimed.attempts + 1, null, processingMs(claimed.claimed_at, t)))!)
  })

  const fail = db.transaction((id: number, error: string | undefined, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'fail', leaseToken)
    forget(id)
    const t = now()
    const reason = error ?? 'no reason given'
    const attempt = claimed.attempts + 1
    return toTask(q.fail.get(id, t, max, reason, eventText(t, EVENT.failed, attempt, attempt >= max, null, reason))!)
  })

  const release = db.transaction((id: number, leaseToken: string | undefined): Task => {
    const claimed = inProgress(id, 'release', leaseToken)
    forget(id)
    const t = now()
    return toTask(q.release.get(id, t, eventText(t, EVENT.released, claimed.attempts + 1))!)
  })

  const renew = db.transaction((id: number, leaseToken: string): Task => {
    inProgress(id, 'renew the lease of', leaseToken)
    forget(id)
    const t = now()
    return toTask(q.renew.get(id, t + leaseMs, t)!)
  })

  const retry = db.transaction((id: number): Task => {
    const row = existing(id)
    if (row.state !== 3) throw new Conflict(`Cannot retry task ${id}: only a failed task (state 3) can be retried; it is in state ${row.state}.`)
    forget(id)
    const t = now()
    return toTask(q.retry.get(id, t, eventText(t, EVENT.retried))!)
  })

  const setState = db.transaction((id: number, state: 0 | 1 | 2): Task => {
    const before = existing(id)
    forget(id)
    const t = now()
    // The original /setById: the timeline shows what the state change amounts to.
    const event = setStateEvent(before.state, state)
    const claim = before.state === 1 ? before.attempts + 1 : null
    const text =
      event === undefined
        ? null
        : event === EVENT.claimed
          ? eventText(t, event, before.attempts + 1)
          : event === EVENT.finished
            ? eventText(t, event, claim, null, claim === null ? null : processingMs(before.claimed_at, t))
            : event === EVENT.released
              ? eventText(t, event, claim)
              : eventText(t, event)
    return toTask(q.setState.get(id, state, state === 1 ? t + leaseMs : null, t, text)!)
  })

  const activate = db.transaction((id: number): void => {
    const row = q.getAny.get(id)
    if (!row || row.removing_until !== null) throw new NotFound(`No task with id ${id}.`)
    forget(id)
    const t = now()
    q.activate.run(id, t, row.ready === 0 ? eventText(t, EVENT.created) : null)
  })

  const { drop, markOne, releaseRemoval, removeMarked } = removalTransactions(db, q, forget, now)

  const sample = db.transaction((t: number) => {
    const counts = Object.fromEntries(q.counts.all().map(({ state, n }) => [state, n]))
    q.sample.run(t - (t % 60_000), t, counts[0] ?? 0, counts[1] ?? 0)
    q.pruneMinutes.run(t - FIGURES_KEPT_MS)
    q.pruneSamples.run(t - FIGURES_KEPT_MS)
  })

  /** A visible task, after the expiry of its lease if that is due; from the rows kept when it is there. */
  function getVisible(id: number): Task | undefined {
    const t = now()
    let row = rows.get(id) ?? q.get.get(id)
    // Only a task in progress past its lease needs the expiry first: most reads cost one lookup.
    if (row && row.state === 1 && row.lease_until !== null && row.lease_until <= t) {
      expireLeases(t)
      row = q.get.get(id)
    }
    if (!row) return undefined
    remember(row)
    return toTask(row)
  }

  return {
    async create(opts) {
      return create.immediate(opts?.ready ?? true, opts?.requestId ?? null, opts?.keyHash ?? null, opts?.traceParent ?? null)
    },
    async get(id) {
      return getVisible(id)
    },
    async getMany(ids) {
      return ids.flatMap((id) => getVisible(id) ?? [])
    },
    async activate(id) {
      activate.immediate(id)
    },
    async drop(id) {
      drop.immediate(id)
    },
    async claim() {
      expireLeases()
      return claim.immediate()
    },
    async claimable() {
      expireLeases()
      return q.anyClaimable.get() !== null
    },
    async renew(id, leaseToken) {
      expireLeases()
      return renew.immediate(id, leaseToken)
    },
    async finish(id, leaseToken) {
      expireLeases()
      return finish.immediate(id, leaseToken)
    },
    async fail(id, error, leaseToken) {
      expireLeases()
      return fail.immediate(id, error, leaseToken)
    },
    async retry(id) {
      expireLeases()
      return retry.immediate(id)
    },
    async release(id, leaseToken) {
      expireLeases()
      return release.immediate(id, leaseToken)
    },
    async setState(id, state) {
      expireLeases()
      return setState.immediate(id, state)
    },
    async *list() {
      expireLeases()
      for (const row of q.all.iterate()) yield toTask(row)
    },
    async recent({ state, limit, before }) {
      expireLeases()
      const below = before ?? Number.MAX_SAFE_INTEGER
      const rows = state === undefined ? q.recent.all(below, limit) : q.recentInState.all(state, below, limit)
      return rows.map(toTask)
    },
    async countByState() {
      expireLeases()
      const counts: Record<TaskState, number> = { 0: 0, 1: 0, 2: 0, 3: 0 }
      for (const { state, n } of q.counts.all()) counts[state] = n
      return counts
    },
    async markForRemoval({ endedBefore, heldBefore, limit }) {
      expireLeases()
      const marked = q.markBatch.all(now(), endedBefore ?? null, heldBefore, limit, REMOVAL_LEASE_MS).map((row) => row.id)
      marked.forEach(forget)
      return marked
    },
    async markOneForRemoval(id) {
      expireLeases()
      markOne.immediate(id)
    },
    async releaseRemoval(ids) {
      releaseRemoval.immediate(ids, now())
    },
    async removeMarked(ids) {
      return removeMarked.immediate(ids)
    },
    async events(id) {
      const task = getVisible(id)
      return task && parseEvents(q.events.get(id)?.events ?? null, task.createdAt)
    },
    async figures({ from, to }) {
      return { minutes: q.minutes.all(from, to).map(toMinuteFigures), samples: q.samples.all(from, to).map(toQueueSample) }
    },
    async sampleQueue() {
      const t = now()
      expireLeases(t)
      sample.immediate(t)
    },
    onLeasesExpired(listener) {
      expiryListeners.add(listener)
    },
    async healthy() {
      return existsSync(dir) && q.ping.get()?.one === 1
    },
    async close() {
      rows.clear()
      db.close()
    },
  }
}
