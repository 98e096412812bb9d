// The request id that follows one piece of work across roles (`X-Request-Id`), kept per async call chain.
import { AsyncLocalStorage } from 'node:async_hooks'

export const REQUEST_ID_HEADER = 'x-request-id'

const context = new AsyncLocalStorage<{ readonly requestId: string }>()

/** A caller's id is kept when it is short and plain; anything else gets a fresh one. */
export function acceptedRequestId(given: string | null): string {
  return given !== null && /^[A-Za-z0-9._:-]{1,64}$/.test(given) ? given : crypto.randomUUID()
}

/** Makes `requestId` current for everything the calling async chain does from here on (used at request start). */
export function enterRequest(requestId: string): void {
  context.enterWith({ requestId })
}

/** Runs `fn` with `requestId` current (a worker does this per task). */
export function withRequestId<T>(requestId: string, fn: () => T): T {
  return context.run({ requestId }, fn)
}

/** The current request id, if any. */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId
}

/** Runs `fn` with no request current; what `fn` enters stays inside it (a role called in-process enters its own). */
export function outsideRequestContext<T>(fn: () => T): T {
  return context.exit(fn)
}
