// Polling for a condition with a deadline: for what the test does not control (another process, a socket, a codec
// off the JavaScript thread), in place of a fixed sleep that is either too long or, on a busy machine, too short.

/** Polls `check` every `everyMs` until it returns something truthy; throws `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value as NonNullable<T>
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await Bun.sleep(everyMs)
  }
}
