// The live workers for the board: who is registered in kv (`workerAddress/<self>`), and what each says on /status.
import { callPeer, type Fetch } from '../../clients/http.ts'
import type { KvClient } from '../../clients/kv-client.ts'

/** One worker on the board. */
export interface WorkerView {
  readonly address: string
  /** It answered /status just now; when false, the figures are the last it gave (if any). */
  readonly reachable: boolean
  readonly loops: number | null
  readonly busy: number | null
  readonly done: number | null
  readonly failed: number | null
  /** When its /status last answered. */
  readonly lastSeen: string | null
  /** What keeps it from working (the master unreachable, stopping), or null. */
  readonly problem: string | null
}

export interface WorkerDirectory {
  /** The registered workers, by address; rejects when kv cannot be read. */
  list(): Promise<WorkerView[]>
  /** Each registered worker's tasks per minute since `since` (epoch ms); a worker that does not answer is left out. */
  histories(since: number): Promise<Array<{ address: string; minutes: Array<{ at: string; done: number; failed: number }> }>>
}

interface WorkerStatus {
  readonly loops: number
  readonly busy: number
  readonly done: number
  readonly failed: number
  readonly problem: string | null
}

const PREFIX = 'workerAddress/'
/** More workers than a board shows in one table; each asked at every refresh. */
const MOST = 200

/**
 * Reads kv and asks each worker its status, bounded by `timeoutMs` so that a hung worker cannot hold the board. A
 * registration lives only while its worker renews it, so a stopped worker leaves the list within its time to live; one
 * that is registered but does not answer shows as unreachable, with its last figures.
 */
export function createWorkerDirectory(kv: KvClient, fetcher: Fetch, options: { timeoutMs?: number; now?: () => number } = {}): WorkerDirectory {
  const timeoutMs = options.timeoutMs ?? 1500
  const now = options.now ?? Date.now
  const seen = new Map<string, { status: WorkerStatus; at: number }>()

  async function ask(address: string): Promise<WorkerView> {
    try {
      const response = await callPeer(fetcher, 'worker', address, '/status', { timeoutMs })
      const body = (await response.json()) as Partial<WorkerStatus>
      const status: WorkerStatus = {
        loops: Number(body.loops) || 0,
        busy: Number(body.busy) || 0,
        done: Number(body.done) || 0,
        failed: Number(body.failed) || 0,
        problem: typeof body.problem === 'string' ? body.problem : null,
      }
      seen.set(address, { status, at: now() })
      return { address, reachable: true, ...status, lastSeen: new Date(now()).toISOString() }
    } catch {
      const last = seen.get(address)
      return {
        address,
        reachable: false,
        loops: last?.status.loops ?? null,
        busy: last?.status.busy ?? null,
        done: last?.status.done ?? null,
        failed: last?.status.failed ?? null,
        lastSeen: last ? new Date(last.at).toISOString() : null,
        problem: 'does not answer on its port',
      }
    }
  }

  const registered = async () => [...new Set((await kv.list(PREFIX)).filter(([key]) => key.startsWith(PREFIX)).map(([, value]) => value))].sort().slice(0, MOST)

  return {
    async histories(since) {
      const answers = await Promise.all(
        (await registered()).map(async (address) => {
          try {
            const response = await callPeer(fetcher, 'worker', address, '/history', { query: { since: Math.max(0, Math.floor(since)) }, timeoutMs })
            const body = (await response.json()) as { minutes?: Array<{ at: string; done: number; failed: number }> }
            return Array.isArray(body.minutes) ? [{ address, minutes: body.minutes }] : []
          } catch {
            return []
          }
        }),
      )
      return answers.flat()
    },
    async list() {
      const addresses = await registered()
      // Forget workers that left the registry, so that the memory stays bounded by the live ones.
      for (const address of seen.keys()) if (!addresses.includes(address)) seen.delete(address)
      return Promise.all(addresses.map(ask))
    },
  }
}
