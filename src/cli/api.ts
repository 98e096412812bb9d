// The command-line client's calls to a master: uploads that honour Retry-After, waits, downloads, operators' calls.

import { rename, rm } from 'node:fs/promises'
import { sleep as pause, untilAborted } from '../shared/async.ts'

/** A task's status as `/status` and `/wait` answer it, or all that an original master can tell (`/isReady`). */
export interface TaskView {
  readonly id: number
  readonly state: number
  readonly stateName: string
  readonly error?: string
  readonly attempts?: number
}

/** An upload the master took: its task id, and the task key when the master keeps results private. */
export interface Uploaded {
  readonly id: number
  readonly key?: string
}

/** The master refused an upload for good (a bad PNG, too large): named with its reason. */
export class Refused extends Error {
  override name = 'Refused'
}

/** A call that failed for good; `status` is the HTTP status when there was an answer. */
export class CallFailed extends Error {
  override name = 'CallFailed'
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
  }
}

export interface ApiOptions {
  /** `host:port` of the master. */
  readonly master: string
  /** PIXMILL_TOKEN, for operators' calls. */
  readonly token?: string
  /** How long to wait after a failure that may pass (a 5xx, no connection), growing; default 500 ms to 8 s. */
  readonly backoffMs?: { readonly initial: number; readonly max: number }
  /** Tries of a call whose failures may pass. Default 6. */
  readonly tries?: number
}

const text = (response: Response) => response.text().then((t) => t.trim().replace(/^Error:\s*/, ''))

/** Sleeps `ms`; an abort (Ctrl-C) ends it at once with its reason. */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => (signal ? untilAborted(pause(ms, signal), signal) : pause(ms))

export function createApi(options: ApiOptions) {
  const base = `http://${options.master}`
  const auth: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {}
  const backoff = options.backoffMs ?? { initial: 500, max: 8000 }
  const tries = options.tries ?? 6

  /**
   * `call` again after a failure that may pass: no connection, a 5xx, or a 429/503 (after its Retry-After). Any other
   * answer is returned as it is, for the caller to judge.
   */
  async function withRetries(what: string, call: () => Promise<Response>, signal?: AbortSignal): Promise<Response> {
    let wait = backoff.initial
    let lastProblem = ''
    for (let attempt = 1; ; attempt++) {
      let response: Response | undefined
      try {
        response = await call()
      } catch (error) {
        if (signal?.aborted) throw signal.reason
        lastProblem = `the master at ${options.master} cannot be reached (${(error as Error).message})`
      }
      if (response && response.status < 500 && response.status !== 429) return response
      const retryAfter = Number(response?.headers.get('retry-after'))
      if (response) lastProblem = `${response.status} ${await text(response)}`
      // Too busy: told when to come back, and not counted as a failure.
      const busy = response !== undefined && (response.status === 429 || response.status === 503) && Number.isFinite(retryAfter)
      if (!busy && attempt >= tries) throw new CallFailed(`${what}: ${lastProblem}`, response?.status)
      if (busy && attempt >= tries * 10) throw new CallFailed(`${what}: still busy after ${attempt} tries (${lastProblem})`, response?.status)
      await sleep(busy ? retryAfter * 1000 : wait, signal)
      wait = Math.min(wait * 2, backoff.max)
    }
  }

  /**
   * The headers of a call about one task: the token, and the task's key when it has one (in a header rather than `key=`,
   * so that it shows in no URL, log line or shell history of a proxy).
   */
  const taskHeaders = (key: string | undefined): Record<string, string> => (key === undefined ? auth : { ...auth, 'x-task-key': key })

  async function json<T>(path: string, signal?: AbortSignal, key?: string): Promise<T> {
    const response = await withRetries(`GET ${path}`, () => fetch(base + path, { headers: taskHeaders(key), signal }), signal)
    if (!response.ok) throw new CallFailed(`GET ${path}: ${response.status} ${await text(response)}`, response.status)
    return (await response.json()) as T
  }

  /** An original master knows no `/wait`: its router answers a bare 404. */
  let waitOffered = true

  return {
    master: options.master,

    /**
     * Streams the file at `path` to `POST /new`; `onBytes` is told how much has gone. Refused for a 4xx. Resolves to the
     * task id, with the task key the master answered in X-Task-Key (private results), which every later call needs.
     */
    async upload(path: string, onBytes?: (sent: number) => void, signal?: AbortSignal): Promise<Uploaded> {
      const file = Bun.file(path)
      const response = await withRetries(
        `uploading ${path}`,
        () => {
          let sent = 0
          const counted = file.stream().pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(chunk, out) {
                sent += chunk.byteLength
                onBytes?.(sent)
                out.enqueue(chunk)
              },
            }),
          )
          const init = {
            method: 'POST',
            body: counted,
            headers: { 'content-type': 'image/png', 'content-length': String(file.size), ...auth },
            signal,
            duplex: 'half',
          }
          return fetch(`${base}/new`, init as RequestInit)
        },
        signal,
      )
      const answer = await text(response)
      if (response.status >= 400) throw new Refused(answer || `the master answered ${response.status}`)
      if (!/^\d+$/.test(answer)) throw new CallFailed(`the master answered the upload with something that is not a task id: ${answer.slice(0, 100)}`)
      const key = response.headers.get('x-task-key') ?? undefined
      return { id: Number(answer), ...(key !== undefined ? { key } : {}) }
    },

    /**
     * The task once it is finished or failed: `/wait` in turns, or `/isReady` every `pollMs` from an original master.
     * `key`: the task key of a private result.
     */
    async waitEnded(id: number, signal?: AbortSignal, pollMs = 500, key?: string): Promise<TaskView> {
      const headers = taskHeaders(key)
      for (;;) {
        if (waitOffered) {
          const response = await withRetries(`waiting for task ${id}`, () => fetch(`${base}/wait?id=${id}&timeout=30`, { headers, signal }), signal)
          if (response.ok) {
            const task = (await response.json()) as TaskView
            if (task.state === 2 || task.state === 3) return task
            continue
          }
          const said = await response.text()
          if (response.status !== 404 || said.startsWith('Error:'))
            throw new CallFailed(`task ${id}: ${response.status} ${said.replace(/^Error:\s*/, '')}`, response.status)
          waitOffered = false
        }
        const ready = await withRetries(`asking whether task ${id} is ready`, () => fetch(`${base}/isReady?id=${id}`, { headers, signal }), signal)
        const answer = await text(ready)
        if (!ready.ok) throw new CallFailed(`task ${id}: ${ready.status} ${answer}`, ready.status)
        if (answer === '1') return { id, state: 2, stateName: 'finished' }
        await sleep(pollMs, signal)
      }
    },

    /** Streams the result of `id` to `dest`, through a temp file beside it (a half-written result is never left). */
    async download(id: number, dest: string, signal?: AbortSignal, key?: string): Promise<number> {
      const response = await withRetries(`downloading task ${id}`, () => fetch(`${base}/get?id=${id}`, { headers: taskHeaders(key), signal }), signal)
      if (!response.ok) throw new CallFailed(`downloading task ${id}: ${response.status} ${await text(response)}`, response.status)
      const temp = `${dest}.${process.pid}.part`
      try {
        const bytes = await Bun.write(temp, response)
        await rename(temp, dest)
        return bytes
      } catch (error) {
        await rm(temp, { force: true })
        throw error
      }
    },

    status: (id: number, signal?: AbortSignal, key?: string) => json<TaskView>(`/status?id=${id}`, signal, key),

    /** An operator's call (`/retryTask`, `/deleteTask`): the token when the system has one. */
    async operator(path: '/retryTask' | '/deleteTask', id: number): Promise<void> {
      const response = await withRetries(`POST ${path}`, () => fetch(`${base}${path}?id=${id}`, { method: 'POST', headers: auth }))
      if (!response.ok) throw new CallFailed(`${response.status} ${await text(response)}`, response.status)
    },
  }
}

export type Api = ReturnType<typeof createApi>
