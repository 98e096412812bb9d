// Waiting with limits: sleeps that an AbortSignal ends, and work that a deadline or an abort stops waiting for. The one
// place these are written, so that every wait in the roles gives up the same way and clears its timer.

/** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * `work`, or a rejection with `late()` once `ms` have passed. The work goes on unobserved (a late failure of it is
 * swallowed: nobody is waiting for it). The timer is cleared as soon as either settles.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      work.catch(() => {})
      reject(late())
    }, ms)
  })
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer))
}

/** `work`'s value, or `fallback` once `ms` have passed (best-effort steps: leaving the registry, flushing spans). */
export function orAfter<T, F>(work: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms)
  })
  return Promise.race([work, late]).finally(() => clearTimeout(timer))
}

/** `work`, or a rejection with `signal.reason` as soon as `signal` aborts (a hung promise cannot hold its caller). */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {})
    return Promise.reject(signal.reason)
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {})
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
