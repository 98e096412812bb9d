// The memory allocator's settings: read by Bun's allocator (mimalloc) once, as the process starts.

/**
 * mimalloc hands freed memory back to the system 0.1 s after it is freed (MIMALLOC_PURGE_DELAY=100). Bun gives every
 * chunk of a request or response body to JavaScript in a fresh buffer, so a role moving images allocates and frees
 * megabytes a second, and each buffer faults its pages in again: on the 2-core bench machine that was more than a
 * third of the CPU the storage and master roles spend per image. -1 keeps freed pages for the next allocation; the
 * resident size of a role then stays at its peak (bounded as before: the collector frees the same buffers) instead of
 * shrinking after a burst. Measured in separate processes, 80 images of 512x512 through a 2-loop worker, CPU per
 * image: storage 11.5-19.5 -> 9.3-11 ms, master 6-9 -> 3.4-5.5 ms, the worker 14-17 -> 12.8-17.6 ms.
 */
export const ALLOCATOR_ENV: Readonly<Record<string, string>> = { MIMALLOC_PURGE_DELAY: '-1' }

/**
 * Restarts this process in place (execve: the same pid and stdio, nothing spawned) with ALLOCATOR_ENV, unless its
 * environment already chooses (an operator's own MIMALLOC_PURGE_DELAY wins). Costs about 0.2 s of start-up; a
 * launcher that sets the variable for its children saves them that.
 */
export function restartWithAllocatorSettings(): void {
  if (Object.keys(ALLOCATOR_ENV).every((name) => process.env[name] !== undefined)) return
  const env = { ...ALLOCATOR_ENV, ...process.env }
  // Not every platform has execve (Windows): there the process runs on with the allocator's defaults.
  if (typeof process.execve !== 'function') return
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], env as Record<string, string>)
}
