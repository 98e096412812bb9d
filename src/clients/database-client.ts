// Client of the database role, for the master; against an original database it keeps to the original endpoints.
import { Type } from '@sinclair/typebox'
import { DependencyUnavailable, HttpError, NotFound, NotOffered } from '../shared/errors.ts'
import {
  CountsJson,
  HistoryJson,
  OriginalTaskJson,
  ReceivedClaimJson,
  TASK_ID_TEXT,
  type TaskCounts,
  type TaskEventRecord,
  TaskEventsJson,
  type TaskHistory,
  TaskJson,
  type TaskRecord,
  TaskRecordJson,
} from '../shared/wire/tasks.ts'
import { answerCheck } from './answer-check.ts'
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { createOfferedPaths } from './offered-paths.ts'
import { onPeer, type PeerAddress } from './peer-address.ts'

export type { TaskRecord }

/** A task as an original database answers it: `{"id", "state"}` and nothing more. */
export interface PlainTaskRecord {
  readonly id: number
  readonly state: number
  readonly plain: true
}

/** A reserved id: `held` while no worker can claim it (an original database has no held tasks: it is claimable at once). */
export interface Reservation {
  readonly id: number
  readonly held: boolean
}

type Query = Record<string, string | number | undefined>

export interface DatabaseClient {
  /**
   * A held task, which no worker can claim until `activateTask`; from an original database, a task claimable at once.
   * `keyHash`: the hash of the task key of a private result, kept with the task; an original database cannot keep it, so
   * there the call fails with NotOffered (501) before any task is made.
   */
  reserveTask(options?: { keyHash?: string }): Promise<Reservation>
  activateTask(id: number): Promise<void>
  dropTask(id: number): Promise<void>
  /** The task; NotFound-like HttpError (404) for an unknown id. */
  getById(id: number): Promise<TaskRecord | PlainTaskRecord>
  /** The known tasks among `ids` (at most 500), by id; from an original database, one `/getById` each. */
  getByIds(ids: readonly number[]): Promise<Map<number, TaskRecord | PlainTaskRecord>>
  /**
   * The database's claim answer as JSON text; NotFound `No non-started task.` when there is none. `waitSeconds`: held
   * until a task can be claimed or that long (an original database answers at once); `signal` ends it early.
   */
  getNewTask(options?: { waitSeconds?: number; signal?: AbortSignal }): Promise<string>
  finishTask(id: number, lease?: string): Promise<void>
  /** NotOffered (501) from an original database, as every call below. */
  failTask(id: number, error?: string, lease?: string): Promise<void>
  retryTask(id: number): Promise<void>
  /** Removes a finished or failed task with its images; Conflict (409) for one waiting or in progress. */
  deleteTask(id: number): Promise<void>
  releaseTask(id: number, lease?: string): Promise<void>
  /** The renewed task as JSON text. */
  renewTask(id: number, lease: string): Promise<string>
  /** The newest tasks, newest first, optionally in one state; `before`: only those with a smaller id (the next page). */
  recentTasks(options: { state?: number; limit?: number; before?: number }): Promise<TaskRecord[]>
  /** The task's timeline, oldest first; HttpError 404 for an unknown id. */
  events(id: number): Promise<TaskEventRecord[]>
  /** Figures in buckets of `step` ms (a multiple of 60000) from `since` (epoch ms) to now. */
  history(options: { since: number; step: number }): Promise<TaskHistory>
  /** How many tasks are in each state. */
  counts(): Promise<TaskCounts>
}

const NO_TASK = /^(Error:\s*)?No non-started task/

const originalTask = answerCheck(OriginalTaskJson, 'a task')
const record = answerCheck(TaskRecordJson, 'a task')
const records = answerCheck(Type.Array(TaskRecordJson), 'a list of tasks')
const claim = answerCheck(ReceivedClaimJson, 'a claimed task')
const renewed = answerCheck(TaskJson, 'a task')
const eventList = answerCheck(TaskEventsJson, 'a task’s events')
const history = answerCheck(HistoryJson, 'the history')
const counts = answerCheck(CountsJson, 'the counts of tasks')

/** `/getById`'s answer: this project's record, or an original database's `{id, state}` (a record with wrong fields is neither). */
function parseTask(text: string): TaskRecord | PlainTaskRecord {
  const task = originalTask.read('database', '/getById', text)
  if ('stateName' in task) return record.check('database', '/getById', task, text)
  return { id: task.id, state: task.state, plain: true }
}

export function createDatabaseClient(peer: PeerAddress, fetcher: Fetch = peerTransport): DatabaseClient {
  const offered = createOfferedPaths()
  const call = (method: string, path: string, query: Query = {}) =>
    onPeer(peer, async (address) => (await callPeer(fetcher, 'database', address, path, { method, query, timeoutMs: 10_000 })).text(), {
      idempotent: method === 'GET',
    })
  const getById = async (id: number) => parseTask(await call('GET', '/getById', { id }))
  return {
    async reserveTask(options = {}) {
      const { keyHash } = options
      return onPeer(peer, async (address) => {
        if (!offered.lacks(address, '/reserveTask')) {
          try {
            const answer = await callPeer(fetcher, 'database', address, '/reserveTask', { method: 'POST', query: { keyHash }, timeoutMs: 10_000 })
            return { id: Number(await answer.text()), held: true }
          } catch (error) {
            if (!(error instanceof NotOffered)) throw error
            offered.remember(address, '/reserveTask')
          }
        }
        if (keyHash !== undefined) {
          throw new NotOffered(
            'The database keeps only the original task records: it cannot keep task keys, which private results (PIXMILL_PRIVATE_RESULTS) need.',
            '/reserveTask',
          )
        }
        // The original way: a task that is claimable before its image is stored (a worker that comes too early fails
        // to fetch the image, and the task goes back to the queue with its lease).
        const id = (await (await callPeer(fetcher, 'database', address, '/newTask', { method: 'POST', timeoutMs: 10_000 })).text()).trim()
        if (!TASK_ID_TEXT.test(id))
          throw new DependencyUnavailable(`The database answered /newTask with something that is not a task id: ${id.slice(0, 200)}`, 502)
        return { id: Number(id), held: false }
      })
    },
    async activateTask(id) {
      await call('POST', '/activateTask', { id })
    },
    async dropTask(id) {
      await call('POST', '/dropTask', { id })
    },
    getById,
    async getByIds(ids) {
      const found = new Map<number, TaskRecord | PlainTaskRecord>()
      try {
        const tasks = records.read('database', '/getByIds', await call('GET', '/getByIds', { ids: ids.join(',') }))
        for (const task of tasks) found.set(task.id, task)
        return found
      } catch (error) {
        if (!(error instanceof NotOffered)) throw error
      }
      await Promise.all(
        ids.map(async (id) => {
          const task = await getById(id).catch((error: unknown) => {
            if (error instanceof HttpError && error.status === 404) return undefined
            throw error
          })
          if (task) found.set(id, task)
        }),
      )
      return found
    },
    async getNewTask(options = {}) {
      const wait = options.waitSeconds ?? 0
      let text: string
      try {
        // Not sent elsewhere after a failure: a claim may have been made there (it expires with its lease).
        text = await onPeer(peer, async (address) =>
          (
            await callPeer(fetcher, 'database', address, '/getNewTask', {
              method: 'POST',
              query: { wait: wait > 0 ? wait : undefined },
              signal: options.signal,
              timeoutMs: 10_000 + wait * 1000,
            })
          ).text(),
        )
      } catch (error) {
        // An original database may refuse with another status than 404.
        if (error instanceof HttpError && error.status < 500 && NO_TASK.test(error.message)) throw new NotFound('No non-started task.')
        throw error
      }
      if (NO_TASK.test(text)) throw new NotFound('No non-started task.')
      // Passed on as it came (an original database's claim is `{id, state}`), but only once it is a claim.
      claim.read('database', '/getNewTask', text)
      return text
    },
    async finishTask(id, lease) {
      await call('POST', '/finishTask', { id, lease })
    },
    async failTask(id, error, lease) {
      await call('POST', '/failTask', { id, error, lease })
    },
    async retryTask(id) {
      await call('POST', '/retryTask', { id })
    },
    async deleteTask(id) {
      await call('POST', '/deleteTask', { id })
    },
    async releaseTask(id, lease) {
      await call('POST', '/releaseTask', { id, lease })
    },
    async renewTask(id, lease) {
      const text = await call('POST', '/renewTask', { id, lease })
      renewed.read('database', '/renewTask', text)
      return text
    },
    async recentTasks({ state, limit, before }) {
      return records.read('database', '/tasks', await call('GET', '/tasks', { state, limit, before }))
    },
    async events(id) {
      return eventList.read('database', '/events', await call('GET', '/events', { id }))
    },
    async history({ since, step }) {
      return history.read('database', '/history', await call('GET', '/history', { since, step }))
    },
    async counts() {
      return counts.read('database', '/counts', await call('GET', '/counts'))
    },
  }
}
