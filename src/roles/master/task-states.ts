// Unfinished states of tasks as the master last saw them, trusted a moment: many polls of one task, one database call.

/** A task as last seen: its state, and the hash of its key (never changes) for checking a key without the database. */
export interface Sighting {
  readonly state: number
  readonly keyHash: string | undefined
}

export interface TaskStates {
  /** `id` as seen unfinished a moment ago, else undefined (ask the database). */
  get(id: number): Sighting | undefined
  /** `id` was seen in `state` just now; a finished state is not kept. */
  set(id: number, state: number, keyHash?: string): void
  /** `id` changed through this master (finished, failed, released, retried, removed): ask the database next time. */
  forget(id: number): void
}

export interface TaskStatesOptions {
  /** How long a state is trusted. Default 250 ms. */
  readonly trustMs?: number
  /** Most ids kept; the oldest sighting goes first. Default 100000. */
  readonly capacity?: number
  readonly now?: () => number
}

/**
 * Clients poll `/isReady` of their tasks, many at a time; each poll was a call to the database. A waiting, running or
 * failed task's state is kept here for `trustMs`: a poll then answers `0` from here, at worst `trustMs` late for a task
 * that finished through another master (one that finishes through this one is asked for again at once). A finished
 * state is never kept: `/isReady` and `/get` answer "finished" only from the database, so that a task removed with
 * its images (retention, an operator) never reads as finished here after its removal began. The key hash kept with a
 * state lets the master answer a poll with the right key from here; a poll whose key does not match asks the database,
 * as one for an unknown id does.
 */
export function createTaskStates(options: TaskStatesOptions = {}): TaskStates {
  const trustMs = options.trustMs ?? 250
  const capacity = options.capacity ?? 100_000
  const now = options.now ?? (() => performance.now())
  const seen = new Map<number, { state: number; keyHash: string | undefined; at: number }>()
  return {
    get(id) {
      const entry = seen.get(id)
      if (entry === undefined) return undefined
      if (now() - entry.at < trustMs) return entry
      seen.delete(id)
      return undefined
    },
    set(id, state, keyHash) {
      seen.delete(id)
      if (state === 2) return
      seen.set(id, { state, keyHash, at: now() })
      // A Map keeps the order ids were set in: the first is the oldest sighting.
      if (seen.size > capacity) seen.delete(seen.keys().next().value!)
    },
    forget(id) {
      seen.delete(id)
    },
  }
}
