// Client of the master's client-facing API (upload, poll, download, status, board), for the frontend.
import { Type } from '@sinclair/typebox'
import { DependencyUnavailable, NotOffered } from '../shared/errors.ts'
import { TASK_KEY_HEADER } from '../shared/task-key.ts'
import { IMAGE_REQUEST_HEADERS, pickHeaders } from '../shared/wire/headers.ts'
import {
  CountsJson,
  HistoryJson,
  type HistoryWindow,
  StatusJson,
  TASK_ID_TEXT,
  type TaskCounts,
  type TaskEventRecord,
  TaskEventsJson,
  type TaskHistory,
  type TaskReadiness,
  type TaskStatus,
} from '../shared/wire/tasks.ts'
import { type AnswerCheck, answerCheck } from './answer-check.ts'
import { callPeer, type Fetch, peerTransport } from './http.ts'
import { createOfferedPaths } from './offered-paths.ts'
import { onPeer, type PeerAddress, peerHealthy } from './peer-address.ts'

export type { TaskCounts, TaskReadiness, TaskStatus }

/** `/isReady`'s answer; an original master may end it with a newline. */
const READINESS = /^[01]\s*$/

const status = answerCheck(StatusJson, 'a task')
const statuses = answerCheck(Type.Array(StatusJson), 'a list of tasks')
const counts = answerCheck(CountsJson, 'the counts of tasks')
const eventList = answerCheck(TaskEventsJson, 'a task’s events')
const history = answerCheck(HistoryJson, 'the history')

/** An upload the master took: its id, and with private results the key that reading the task needs. */
export interface Submitted {
  readonly id: number
  readonly key?: string
}

export interface MasterPublicClient {
  /**
   * Streams `body` (the raw PNG) to `POST /new` and resolves to the new task (its id, and its key when the master gives
   * one). `clientAddress`: the uploader's address, passed on in X-Forwarded-For so that the master's upload limit counts
   * the uploader, not this role.
   */
  submit(body: BodyInit, options?: { signal?: AbortSignal; clientAddress?: string }): Promise<Submitted>
  /** The master's `/isReady` answer as it came (`0` or `1`). `key`: the task key of a private result (as below). */
  isReady(id: number, key?: string): Promise<string>
  /** The master's `/get` response, streaming; HttpError 404 while the task is not finished. */
  getImage(id: number, request?: Request, key?: string): Promise<Response>
  /** The task's status; from a master of the original protocol (no `/status`), what its `/isReady` says. */
  status(id: number, key?: string): Promise<TaskStatus | TaskReadiness>
  /**
   * The newest tasks, newest first, optionally in one state; `before`: only those with a smaller id (pass the last id of
   * a page for the next one; new uploads do not move it). NotOffered (501) from an original master, as the next three.
   */
  tasks(options?: { state?: number; limit?: number; before?: number }): Promise<TaskStatus[]>
  counts(): Promise<TaskCounts>
  /** The task's timeline, oldest first (created, claimed, failed, finished, ...); HttpError 404 for an unknown id. */
  events(id: number): Promise<TaskEventRecord[]>
  /** Tasks created, finished and failed, processing time and the queue's depth: the last hour by minute, or the last day by 15 minutes. */
  history(window?: HistoryWindow): Promise<TaskHistory>
  /** Puts a failed task back; HttpError 409 when it is not failed. */
  retry(id: number): Promise<void>
  /** Removes a finished or failed task with its images; HttpError 409 for one waiting or in progress. */
  deleteTask(id: number): Promise<void>
  /** Whether the master answers `/health` with 200 within `timeoutMs`. */
  healthy(timeoutMs?: number): Promise<boolean>
}

/** A client of the master at `peer`; a network failure or a 5xx makes the next call look the address up again. */
export function createMasterPublicClient(peer: PeerAddress, fetcher: Fetch = peerTransport): MasterPublicClient {
  // Reads are tried once more on the master's new address when it moved; a POST may have taken effect, so it is not.
  const text = (method: string, path: string, query: Record<string, string | number | undefined> = {}) =>
    onPeer(peer, async (address) => (await callPeer(fetcher, 'master', address, path, { method, query, timeoutMs: 10_000 })).text(), {
      idempotent: method === 'GET',
    })
  const offered = createOfferedPaths()
  const json = async <T>(check: AnswerCheck<T>, path: string, query: Record<string, string | number | undefined> = {}) =>
    check.read('master', path, await text('GET', path, query))
  return {
    async submit(body, options) {
      const response = await onPeer(
        peer,
        (address) =>
          callPeer(fetcher, 'master', address, '/new', {
            method: 'POST',
            body,
            headers: { 'content-type': 'image/png', ...(options?.clientAddress ? { 'x-forwarded-for': options.clientAddress } : {}) },
            signal: options?.signal,
            // A 50 MiB upload over a slow link takes a while; the body is streamed as it arrives.
            timeoutMs: 600_000,
          }),
        { replayable: !(body instanceof ReadableStream) },
      )
      const id = (await response.text()).trim()
      // An original master answers its failures with status 200 too: only a task id is a task id.
      if (!TASK_ID_TEXT.test(id))
        throw new DependencyUnavailable(`The master answered the upload with something that is not a task id: ${id.slice(0, 200)}`, 502)
      const key = response.headers.get(TASK_KEY_HEADER) ?? undefined
      return { id: Number(id), ...(key !== undefined ? { key } : {}) }
    },
    async isReady(id, key) {
      const answer = await text('GET', '/isReady', { id, key })
      // An original master answers its failures with status 200 too: only `0` or `1` is an answer.
      if (!READINESS.test(answer))
        throw new DependencyUnavailable(`The master answered /isReady with a body that is not 0 or 1: ${answer.slice(0, 200) || '(empty)'}`, 502)
      return answer
    },
    getImage(id, request, key) {
      const headers = pickHeaders(request?.headers, IMAGE_REQUEST_HEADERS)
      return onPeer(peer, (address) => callPeer(fetcher, 'master', address, '/get', { query: { id, key }, headers, timeoutMs: 300_000 }), { idempotent: true })
    },
    status: (id, key) =>
      onPeer(
        peer,
        async (address) => {
          if (!offered.lacks(address, '/status')) {
            try {
              return status.read(
                'master',
                '/status',
                await (await callPeer(fetcher, 'master', address, '/status', { query: { id, key }, timeoutMs: 10_000 })).text(),
              )
            } catch (error) {
              if (!(error instanceof NotOffered)) throw error
              // Remembered, so that polling a task costs one call, not two.
              offered.remember(address, '/status')
            }
          }
          const answer = (await (await callPeer(fetcher, 'master', address, '/isReady', { query: { id, key }, timeoutMs: 10_000 })).text()).trim()
          if (!READINESS.test(answer))
            throw new DependencyUnavailable(`The master answered /isReady with a body that is not 0 or 1: ${answer.slice(0, 200) || '(empty)'}`, 502)
          const ready = answer === '1'
          return ready
            ? ({ id, state: 2, stateName: 'finished', readinessOnly: true } as const)
            : ({ id, state: 0, stateName: 'not-finished', readinessOnly: true } as const)
        },
        { idempotent: true },
      ),
    tasks: ({ state, limit, before } = {}) => json(statuses, '/tasks', { state, limit, before }),
    counts: () => json(counts, '/counts'),
    events: (id) => json(eventList, '/events', { id }),
    history: (window = 'hour') => json(history, '/history', { window }),
    async retry(id) {
      await text('POST', '/retryTask', { id })
    },
    async deleteTask(id) {
      await text('POST', '/deleteTask', { id })
    },
    healthy: (timeoutMs = 1000) => peerHealthy(peer, fetcher, timeoutMs),
  }
}
