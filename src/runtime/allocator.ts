// The memory allocator's settings: read by Bun's allocator (mimalloc) once, as the process starts.

/**
 * mimalloc hands freed memory back to the system 0.1 s after it is freed (MIMALLOC_PURGE_DELAY=100). Bun gives every
 * chunk of a request or response body to JavaScript in a fresh buffer, so a role moving images allocates and frees
 * megabytes a second, and with pages handed back each buffer faults its pages in again: on the 2-core bench machine
 * the page faults and the copies into fresh pages were the largest share of the CPU the storage and master roles spent
 * per image. -1 keeps freed pages for the next allocation. The price: a role's resident size stays at its peak instead
 * of shrinking when it goes quiet (still bounded: the collector frees the same buffers as before), about 4 MiB more at
 * rest and 4-5 MiB more at the peak of a 200 MiB upload. Measured end to end, 512x512 images through a 2-loop worker,
 * three alternating rounds, CPU per image: storage 8.8-9.5 ms at 100, 8.0-8.3 at 1000, 4.8-9.0 with -1; master
 * 7.0-7.4, 5.0-5.9 and 3.8-4.8 ms.
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
  // Not every platform has execve (Windows), and a system may refuse it: then the process runs on with the
  // allocator's defaults, slower but whole.
  if (typeof process.execve !== 'function') return
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], env as Record<string, string>)
  } catch (error) {
    console.error(`Could not restart with ${Object.keys(ALLOCATOR_ENV).join(', ')} set (${(error as Error).message}); running with the allocator's defaults.`)
  }
}
