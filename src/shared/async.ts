// Waiting with limits: sleeps that an AbortSignal ends, and work that a deadline or an abort stops waiting for. The one
// place these are written, so that every wait in the roles gives up the same way and clears its timer. Each takes the
// clock its caller was given (the real one by default), so that a test's clock moves these waits too.
import { type Clock, systemClock } from './clock.ts'

/** Resolves after `ms`, or at once (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const cancel = clock.after(ms, done)
    function done() {
      cancel()
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
export function withDeadline<T>(work: Promise<T>, ms: number, late: () => Error, clock: Clock = systemClock): Promise<T> {
  let cancel: (() => void) | undefined
  const deadline = new Promise<never>((_, reject) => {
    cancel = clock.after(ms, () => {
      work.catch(() => {})
      reject(late())
    })
  })
  return Promise.race([work, deadline]).finally(() => cancel?.())
}

/** `work`'s value, or `fallback` once `ms` have passed (best-effort steps: leaving the registry, flushing spans). */
export function orAfter<T, F>(work: Promise<T>, ms: number, fallback: F, clock: Clock = systemClock): Promise<T | F> {
  let cancel: (() => void) | undefined
  const late = new Promise<F>((resolve) => {
    cancel = clock.after(ms, () => resolve(fallback))
  })
  return Promise.race([work, late]).finally(() => cancel?.())
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

/**
 * A signal that aborts with a TimeoutError `ms` from now on `clock` (AbortSignal.timeout, on a clock a test can move).
 * Its timer does not keep the process alive.
 */
export function timeoutSignal(ms: number, clock: Clock = systemClock): AbortSignal {
  if (clock === systemClock) return AbortSignal.timeout(ms)
  const controller = new AbortController()
  clock.after(ms, () => controller.abort(new DOMException(`The operation timed out after ${ms} ms.`, 'TimeoutError')), { unref: true })
  return controller.signal
}
