// What the operator's console reads from the roles: the master's task history, task list and timelines, the workers'.
import type { TaskReadiness, TaskStatus } from '../../clients/master-public-client.ts'

export type HistoryWindow = 'hour' | 'day'
export const HISTORY_WINDOWS: readonly HistoryWindow[] = ['hour', 'day']

/** One bucket of the database's history (`GET /history` on the master). */
export interface HistoryBucket {
  readonly at: string
  readonly created: number
  readonly finished: number
  readonly failed: number
  readonly failedForGood: number
  readonly waiting: number | null
  readonly inProgress: number | null
  readonly processingMs: { readonly count: number; readonly p50: number | null; readonly p95: number | null }
}

export interface TaskHistory {
  readonly since: string
  readonly step: number
  readonly buckets: readonly HistoryBucket[]
}

export type TaskEventName = 'created' | 'claimed' | 'finished' | 'failed' | 'lease_expired' | 'released' | 'retried'

/** One step of a task's timeline (`GET /events` on the master). */
export interface TaskEvent {
  readonly at: string
  readonly event: TaskEventName
  readonly attempt?: number
  readonly error?: string
  readonly forGood?: boolean
  readonly ms?: number
}

export interface TaskPageQuery {
  readonly state?: number
  readonly limit?: number
  /** Only tasks with a smaller id: the next page, stable while new tasks arrive. */
  readonly before?: number
}

/** The master's side of the console. */
export interface ConsoleSource {
  history(window: HistoryWindow): Promise<TaskHistory>
  events(id: number): Promise<TaskEvent[]>
  tasks(query: TaskPageQuery): Promise<TaskStatus[]>
  status(id: number): Promise<TaskStatus | TaskReadiness>
}
