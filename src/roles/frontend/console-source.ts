// What the operator's console reads from the master: its task history, task list, statuses and timelines. The shapes
// are the wire contract's (src/shared/wire/tasks.ts).
import type { MasterPublicClient } from '../../clients/master-public-client.ts'
import type { HistoryWindow, TaskEventRecord, TaskHistory } from '../../shared/wire/tasks.ts'

export type { HistoryWindow, TaskHistory }
export type TaskEvent = TaskEventRecord
export type HistoryBucket = TaskHistory['buckets'][number]

/** The master's side of the console: the part of its client the console uses. */
export type ConsoleSource = Pick<MasterPublicClient, 'history' | 'events' | 'tasks' | 'status'>
