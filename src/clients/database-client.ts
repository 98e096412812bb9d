// Client of the database role, for the master.
import type { TaskStatus } from './master-public-client.ts'
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { onPeer, type PeerAddress } from './peer-address.ts'

/** A task as the database answers `/getById`: the public status plus the database's own fields. */
export interface TaskRecord extends TaskStatus {
  readonly leaseExpiresAt?: string
  readonly held?: boolean
}

type Query = Record<string, string | number | undefined>

export interface DatabaseClient {
  /** A held task: no worker can claim it until `activateTask`. */
  reserveTask(): Promise<number>
  activateTask(id: number): Promise<void>
  dropTask(id: number): Promise<void>
  /** The task; NotFound-like HttpError (404) for an unknown id. */
  getById(id: number): Promise<TaskRecord>
  /** The database's claim answer as JSON text; HttpError 404 `No non-started task.` when there is none. */
  getNewTask(): Promise<string>
  finishTask(id: number, lease?: string): Promise<void>
  failTask(id: number, error?: string, lease?: string): Promise<void>
  retryTask(id: number): Promise<void>
  releaseTask(id: number, lease?: string): Promise<void>
  /** The renewed task as JSON text. */
  renewTask(id: number, lease: string): Promise<string>
  /** The newest tasks, newest first, optionally in one state. */
  recentTasks(options: { state?: number; limit?: number }): Promise<TaskRecord[]>
  /** How many tasks are in each state. */
  counts(): Promise<Record<'not-started' | 'in-progress' | 'finished' | 'failed', number>>
}

export function createDatabaseClient(peer: PeerAddress, fetcher: Fetch = peerTransport): DatabaseClient {
  const call = (method: string, path: string, query: Query = {}) =>
    onPeer(peer, async (address) => (await callPeer(fetcher, 'database', address, path, { method, query, timeoutMs: 10_000 })).text(), {
      idempotent: method === 'GET',
    })
  return {
    async reserveTask() {
      return Number(await call('POST', '/reserveTask'))
    },
    async activateTask(id) {
      await call('POST', '/activateTask', { id })
    },
    async dropTask(id) {
      await call('POST', '/dropTask', { id })
    },
    async getById(id) {
      return JSON.parse(await call('GET', '/getById', { id })) as TaskRecord
    },
    getNewTask: () => call('POST', '/getNewTask'),
    async finishTask(id, lease) {
      await call('POST', '/finishTask', { id, lease })
    },
    async failTask(id, error, lease) {
      await call('POST', '/failTask', { id, error, lease })
    },
    async retryTask(id) {
      await call('POST', '/retryTask', { id })
    },
    async releaseTask(id, lease) {
      await call('POST', '/releaseTask', { id, lease })
    },
    renewTask: (id, lease) => call('POST', '/renewTask', { id, lease }),
    async recentTasks({ state, limit }) {
      return JSON.parse(await call('GET', '/tasks', { state, limit })) as TaskRecord[]
    },
    async counts() {
      return JSON.parse(await call('GET', '/counts'))
    },
  }
}
