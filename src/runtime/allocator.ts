// The memory allocators' settings: read by Bun's allocator (mimalloc) and glibc's malloc once, as the process starts.

/**
 * mimalloc hands freed memory back to the system 0.1 s after it is freed (MIMALLOC_PURGE_DELAY=100). Bun gives every
 * chunk of a request or response body to JavaScript in a fresh buffer, so a role moving images allocates and frees
 * megabytes a second, and with pages handed back each buffer faults its pages in again: on the 2-core bench machine
 * the page faults and the copies into fresh pages were the largest share of the CPU the storage and master roles spent
 * per image. -1 keeps freed pages for the next allocation. The price: a role's resident size stays at its peak instead
 * of shrinking when it goes quiet (still bounded: the collector frees the same buffers as before), about 4 MiB more at
 * rest and 4-5 MiB more at the peak of a 200 MiB upload. Measured end to end, 512x512 images through a 2-loop worker,
 * three alternating rounds, CPU per image: storage 8.8-9.5 ms at 100, 8.0-8.3 at 1000, 4.8-9.0 with -1; master
 * 7.0-7.4, 5.0-5.9 and 3.8-4.8 ms (before it passed uploads on unread: see MASTER_PURGE_DELAY).
 */
const KEEP_FREED_PAGES = '-1'

/**
 * The codecs (libvips under sharp, the Rust PNG encoder) allocate with glibc's malloc, which gives a block of 128 KiB
 * and more its own mmap at first, moves that threshold with what is freed, and hands the top of its heap back once
 * 128 KiB or more of it is free: a 512x512 image's 1 MiB of pixels, their copy for the encoder and the encoder's output
 * were mapped and faulted in afresh again and again. Blocks up to 32 MiB from the heap, and up to 64 MiB of it kept:
 * measured with the raw image work in alternating rounds, 512x512 one at a time 104-125 -> 126-131 images/s (CPU
 * 2.80-2.97 -> 2.54-2.76 s for 200 images); 2048x2048 two at a time 7.6-8.9 -> 9.3-11.8 images/s, 10-20 % less CPU,
 * peak RSS no higher (510-633 against 572-702 MB). In the worker the copy of the pixels for the encoder, on the JS
 * thread, fell from 1.3-2.1 to 0.4 ms per 512x512 image. Set as glibc's own aliases of the tunables rather than
 * GLIBC_TUNABLES, which glibc cuts short in the environment it hands on (only its first tunable reached a child).
 */
const GLIBC_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024), MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024) }

/**
 * The master keeps freed pages for a second (MIMALLOC_PURGE_DELAY=1000) rather than for ever. It hands uploads to
 * storage unread (accept-upload.ts), so kept pages save it little: with -1 its resident size stayed at the high-water
 * mark of the buffers it ever held, 82-91 MB after 400 uploads of 512x512 and a 62-70 MiB peak while a 200 MiB upload
 * went through it; with 1000, 69-73 MB and 60-62 MiB (any finite delay did the same: 100, 300, 10000), for 0.25-0.35 ms
 * more CPU per image (2.47-2.70 against 2.13-2.47 ms, three alternating rounds).
 */
const MASTER_PURGE_DELAY = '1000'

/**
 * The allocators' settings for a process running `roles` (entry files and the launcher's children: one role; the
 * launcher's one process: several). Freed pages are kept for ever unless the process runs the master alone: another
 * role beside it decides for the process it shares.
 */
export function allocatorEnv(roles: readonly string[]): Readonly<Record<string, string>> {
  const purgeDelay = roles.length > 0 && roles.every((role) => role === 'master') ? MASTER_PURGE_DELAY : KEEP_FREED_PAGES
  return { MIMALLOC_PURGE_DELAY: purgeDelay, ...GLIBC_MALLOC }
}

/**
 * The process's environment with the allocators' settings for `roles` where it does not choose: an operator's own
 * value of any of them wins.
 */
export function withAllocatorEnv(roles: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> {
  return { ...allocatorEnv(roles), ...(env as Record<string, string>) }
}

/**
 * Restarts this process in place (execve: the same pid and stdio, nothing spawned) with the settings for `roles`,
 * unless its environment already chooses (an operator's own value of any of them wins). Costs about 0.2 s of
 * start-up; a launcher that sets the variables for its children saves them that.
 */
export function restartWithAllocatorSettings(roles: readonly string[]): void {
  const settings = allocatorEnv(roles)
  if (Object.keys(settings).every((name) => process.env[name] !== undefined)) return
  const env = withAllocatorEnv(roles)
  // Not every platform has execve (Windows), and a system may refuse it: then the process runs on with the
  // allocator's defaults, slower but whole.
  if (typeof process.execve !== 'function') return
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], env as Record<string, string>)
  } catch (error) {
    console.error(`Could not restart with ${Object.keys(settings).join(', ')} set (${(error as Error).message}); running with the allocator's defaults.`)
  }
}
