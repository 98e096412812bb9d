// Client of the master's worker-facing API.
import { NotFound } from '../shared/errors.ts'
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { onPeer, type PeerAddress } from './peer-address.ts'

/** A claimed task as the master answers it; `leaseToken` is absent from original masters. */
export interface ClaimedTask {
  readonly id: number
  readonly state: number
  readonly leaseToken?: string
  readonly leaseExpiresAt?: string
  /** The upload's request id (newer masters), for following the task in the logs. */
  readonly requestId?: string
}

export interface MasterWorkerClient {
  /** The next task, or undefined when there is none (`Error: No non-started task.`). */
  getNewTask(): Promise<ClaimedTask | undefined>
  /** `processingMs`, when given, feeds the master's processing-time figures. */
  registerTaskFinished(id: number, leaseToken?: string, processingMs?: number): Promise<void>
  registerTaskFailed(id: number, error: string, leaseToken?: string): Promise<void>
  /** Extends the lease of a claim while the work goes on. */
  renewTask(id: number, leaseToken: string): Promise<void>
  /** Gives a claim back at once (shutting down), so another worker can take it without waiting for the lease. */
  releaseTask(id: number, leaseToken?: string): Promise<void>
}

export function createMasterWorkerClient(peer: PeerAddress, fetcher: Fetch = peerTransport): MasterWorkerClient {
  const post = (path: string, query: Record<string, string | number | undefined>) =>
    onPeer(peer, async (address) => (await callPeer(fetcher, 'master', address, path, { method: 'POST', query })).text())
  return {
    async getNewTask() {
      try {
        const text = await post('/getNewTask', {})
        return JSON.parse(text) as ClaimedTask
      } catch (error) {
        if (error instanceof NotFound || ((error as { status?: number }).status === 404 && /No non-started task/.test((error as Error).message))) return undefined
        throw error
      }
    },
    async registerTaskFinished(id, leaseToken, processingMs) {
      await post('/registerTaskFinished', { id, lease: leaseToken, ms: processingMs === undefined ? undefined : Math.round(processingMs) })
    },
    async registerTaskFailed(id, error, leaseToken) {
      await post('/registerTaskFailed', { id, error: error.slice(0, 2000), lease: leaseToken })
    },
    async renewTask(id, leaseToken) {
      await post('/renewTask', { id, lease: leaseToken })
    },
    async releaseTask(id, leaseToken) {
      await post('/releaseTask', { id, lease: leaseToken })
    },
  }
}
