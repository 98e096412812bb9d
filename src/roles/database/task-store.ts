// The TaskStore interface: task records, claims and leases, whatever keeps them.
import type { Durability } from '../../shared/durability.ts'

/** 0 not started, 1 in progress, 2 finished, 3 failed for good. */
export type TaskState = 0 | 1 | 2 | 3

export const STATE_NAMES = ['not-started', 'in-progress', 'finished', 'failed'] as const

export interface Task {
  readonly id: number
  readonly state: TaskState
  /** Failed attempts so far (a lease that ran out counts as one). */
  readonly attempts: number
  /** The last failure's reason. */
  readonly error: string | null
  /** Epoch milliseconds. */
  readonly createdAt: number
  readonly updatedAt: number
  /** When the current lease ends (state 1 only), epoch milliseconds. */
  readonly leaseExpiresAt: number | null
  /** The X-Request-Id of the upload that created the task, so its processing can be followed in the logs. */
  readonly requestId: string | null
  /** SHA-256 (hex) of the task's key when its result is private (PIXMILL_PRIVATE_RESULTS); the key itself is never kept. */
  readonly keyHash: string | null
  /** The W3C `traceparent` of the upload's span, so that the worker's work on the task joins the upload's trace. */
  readonly traceParent: string | null
}

/** What happened to a task: its timeline is a list of these, oldest first. */
export type TaskEventName = 'created' | 'claimed' | 'finished' | 'failed' | 'lease_expired' | 'released' | 'retried'

export interface TaskEvent {
  /** Epoch milliseconds. */
  readonly at: number
  readonly event: TaskEventName
  /** The attempt this event belongs to (claimed, finished, failed, lease_expired, released): failed attempts before it + 1. */
  readonly attempt?: number
  /** Why the attempt failed (failed). */
  readonly error?: string
  /** Whether the failure ended the task (failed, lease_expired): true at `maxAttempts`, false when it waits again. */
  readonly forGood?: boolean
  /** Processing time (finished): from this attempt's claim to its finish. */
  readonly ms?: number
}

/** One minute's figures, kept as events are recorded (no task is read to make them). */
export interface MinuteFigures {
  /** The minute's start, epoch milliseconds. */
  readonly minute: number
  readonly created: number
  readonly finished: number
  /** Failed attempts, lease expiries included. */
  readonly failed: number
  readonly failedForGood: number
  /** Processing times of the tasks finished: counts per bucket of PROCESSING_BUCKETS_MS (the last one above every bound). */
  readonly processing: readonly number[]
}

/** The queue's depth as last sampled in a minute. */
export interface QueueSample {
  /** The minute's start, epoch milliseconds. */
  readonly minute: number
  /** When it was taken, epoch milliseconds. */
  readonly at: number
  readonly waiting: number
  readonly inProgress: number
}

/** Upper bounds (ms) of the processing-time buckets; one more bucket takes everything above. Fixed: the stores keep a column per bucket. */
export const PROCESSING_BUCKETS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000] as const

/** Per-minute figures and queue samples are kept this long. */
export const FIGURES_KEPT_MS = 48 * 60 * 60 * 1000

/** A claimed task and the token that proves the claim. */
export interface Claim {
  readonly task: Task
  readonly leaseToken: string
}

/** The answer of one claim call. */
export interface ClaimResult {
  readonly claim: Claim | undefined
}

/** A removal that has not completed after this long is taken up again by a sweep (of any database instance). */
export const REMOVAL_LEASE_MS = 60 * 1000

/** Tasks held for an upload that never completed are removed after this long. */
export const HELD_TASK_TTL_MS = 60 * 60 * 1000

/** The message a task gets when its lease runs out. */
export const LEASE_RAN_OUT = 'the lease ran out before the task was finished'

export interface TaskStoreOptions {
  readonly leaseSeconds: number
  readonly maxAttempts: number
  /** Epoch milliseconds; injected so that tests move time instead of sleeping. */
  readonly now?: () => number
  /** What a commit survives, for a store on this machine's disk (PIXMILL_DURABILITY). Default `process`. */
  readonly durability?: Durability
}

/**
 * Task records. Methods throw NotFound for an unknown id and Conflict for a call the task's state forbids.
 * A `leaseToken` argument, when given, must match the current claim; without it the call acts as the original
 * protocol did (any caller may finish a task in progress).
 *
 * A lease that ran out is seen by every call at once, read or write, with no timer per task: each call first puts
 * back (or fails for good, at `maxAttempts`) the tasks whose lease ended, counting one failed attempt each. A held
 * task (created with `ready: false`, its image still on its way) is seen by no call but `activate` and `drop`:
 * `get` answers undefined and no list or count includes it, so an id whose upload was refused is never visible.
 */
export interface TaskStore {
  /** A new task; `ready: false` makes one that no worker can claim until `activate`. Ids count up from 0, never reused. */
  create(options?: { ready?: boolean; requestId?: string; keyHash?: string; traceParent?: string }): Promise<number>
  get(id: number): Promise<Task | undefined>
  /** The visible tasks among `ids` (unknown ones left out), in one go. */
  getMany(ids: readonly number[]): Promise<Task[]>
  /** A held task becomes claimable. Idempotent. */
  activate(id: number): Promise<void>
  /** Removes a task that is still held (its upload failed). */
  drop(id: number): Promise<void>
  /** Claims the oldest claimable not-started task. */
  claim(): Promise<ClaimResult>
  /** Whether a task could be claimed now (cheap: one look at an index). */
  claimable(): Promise<boolean>
  /** Extends a claim's lease. */
  renew(id: number, leaseToken: string): Promise<Task>
  /** In progress to finished. */
  finish(id: number, leaseToken?: string): Promise<Task>
  /** Gives a claim back at once (a worker shutting down): not started again, no attempt counted. */
  release(id: number, leaseToken?: string): Promise<Task>
  /** Counts a failed attempt: back to not started, or failed for good at `maxAttempts`. */
  fail(id: number, error: string | undefined, leaseToken?: string): Promise<Task>
  /** A failed task goes back to not started with its attempts cleared. */
  retry(id: number): Promise<Task>
  /** Sets a task's state (0, 1 or 2) as the original `/setById` does. */
  setState(id: number, state: 0 | 1 | 2): Promise<Task>
  /** Every task, oldest first. */
  list(): AsyncIterable<Task>
  /**
   * The newest tasks (by id, newest first), optionally only those in one state; at most `limit`. `before`: only tasks
   * with a smaller id (the last id of the previous page), so that pages stay put while new tasks arrive.
   */
  recent(options: { state?: TaskState; limit: number; before?: number }): Promise<Task[]>
  /** How many tasks are in each state. */
  countByState(): Promise<Record<TaskState, number>>
  /**
   * Marks up to `limit` tasks for removal and answers their ids, oldest first: finished or failed tasks that ended
   * (were last changed) at or before `endedBefore` (none when undefined: retention off), held tasks created at or
   * before `heldBefore` (an upload that never completed), and tasks whose removal began more than REMOVAL_LEASE_MS ago
   * and never completed (a sweep that was interrupted). From the moment it is marked, a task is seen by no read and no
   * change; each mark is a lease, so that several sweepers never take the same task at once.
   */
  markForRemoval(options: { endedBefore?: number; heldBefore: number; limit: number }): Promise<number[]>
  /**
   * Marks one finished or failed task for removal (an operator's delete): NotFound for an unknown id, Conflict for a
   * task waiting or in progress. A task already marked is marked again (its removal is tried again).
   */
  markOneForRemoval(id: number): Promise<void>
  /** The removal of these tasks failed (storage down): their marks run out now, so that the next sweep takes them. */
  releaseRemoval(ids: readonly number[]): Promise<void>
  /** Deletes the records of these tasks, if they are marked for removal; answers how many went. */
  removeMarked(ids: readonly number[]): Promise<number>
  /**
   * The task's timeline, oldest first; undefined for an unknown task or one no read sees (held, being removed). Each
   * event is recorded with the change it describes, and goes with the task. A task from before timelines were kept
   * gets a `created` event made from its creation time.
   */
  events(id: number): Promise<TaskEvent[] | undefined>
  /** The figures of the minutes from `from` to `to` (epoch ms, both included) that have any, oldest first. */
  figures(options: { from: number; to: number }): Promise<{ minutes: MinuteFigures[]; samples: QueueSample[] }>
  /**
   * Records the queue's depth (tasks waiting, in progress) as the current minute's sample (a later one in the same
   * minute replaces it), and drops figures older than FIGURES_KEPT_MS.
   */
  sampleQueue(): Promise<void>
  /** `listener` is told how many leases ran out each time expired tasks are put back, once the change committed. */
  onLeasesExpired(listener: (count: number) => void): void
  healthy(): Promise<boolean>
  close(): Promise<void>
}
