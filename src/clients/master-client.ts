// Client of the master's worker-facing API.
import { HttpError } from '../shared/errors.ts'
import { type ReceivedClaim, ReceivedClaimJson } from '../shared/wire/tasks.ts'
import { answerCheck } from './answer-check.ts'
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { onPeer, type PeerAddress } from './peer-address.ts'

/**
 * A claimed task as the master answers it (ReceivedClaimJson), its state defaulted; `leaseToken`, `requestId` (the
 * upload's, for the logs) and `traceparent` (which the worker's spans continue) are absent from original masters.
 */
export type ClaimedTask = ReceivedClaim & { readonly state: number }

export interface MasterWorkerClient {
  /**
   * The next task, or undefined when there is none (`Error: No non-started task.`). `waitSeconds`: the master holds the
   * call until a task can be claimed or that long (a master of the original protocol answers at once); `signal` ends it.
   */
  getNewTask(options?: { waitSeconds?: number; signal?: AbortSignal }): Promise<ClaimedTask | undefined>
  /** `processingMs`, when given, feeds the master's processing-time figures. */
  registerTaskFinished(id: number, leaseToken?: string, processingMs?: number): Promise<void>
  /** NotOffered (501) from a master of the original protocol, which has no failed state; the same for the next two. */
  registerTaskFailed(id: number, error: string, leaseToken?: string): Promise<void>
  /** Extends the lease of a claim while the work goes on. */
  renewTask(id: number, leaseToken: string): Promise<void>
  /** Gives a claim back at once (shutting down), so another worker can take it without waiting for the lease. */
  releaseTask(id: number, leaseToken?: string): Promise<void>
}

const NO_TASK = /^(Error:\s*)?No non-started task/

const claims = answerCheck(ReceivedClaimJson, 'a task')

/** A claim answer, checked: a master that answers something else is failing, not handing out a task. */
function parseClaim(text: string): ClaimedTask {
  const claim = claims.read('master', '/getNewTask', text)
  // An empty token is none: the claim is then finished without one, as an original master's is.
  return { ...claim, state: claim.state ?? 1, leaseToken: claim.leaseToken || undefined }
}

export function createMasterWorkerClient(peer: PeerAddress, fetcher: Fetch = peerTransport): MasterWorkerClient {
  const post = (path: string, query: Record<string, string | number | undefined>, extra: { signal?: AbortSignal; timeoutMs?: number } = {}) =>
    onPeer(peer, async (address) => (await callPeer(fetcher, 'master', address, path, { method: 'POST', query, ...extra })).text())
  return {
    async getNewTask(options = {}) {
      const wait = options.waitSeconds ?? 0
      let text: string
      try {
        text = await post('/getNewTask', { wait: wait > 0 ? wait : undefined }, { signal: options.signal, timeoutMs: 30_000 + wait * 1000 })
      } catch (error) {
        if (error instanceof HttpError && error.status < 500 && NO_TASK.test(error.message)) return undefined
        throw error
      }
      // An original master passes the database's answer on as it came, with status 200 even for its errors.
      if (NO_TASK.test(text)) return undefined
      return parseClaim(text)
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
