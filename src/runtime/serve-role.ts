// Serving a role's app: listen, answer calls from roles of the same process, register in kv and keep the
// registration alive, and stop gracefully.
import type { AnyElysia } from 'elysia'
import { serveInProcess } from '../clients/in-process.ts'
import type { KvClient } from '../clients/kv-client.ts'
import type { Address } from '../shared/args.ts'
import { orAfter } from '../shared/async.ts'
import { withBackoff } from '../shared/backoff.ts'
import { type Cancel, type Clock, systemClock } from '../shared/clock.ts'
import type { Logger } from '../shared/logger.ts'
import { stopRoleTracer } from '../shared/tracing.ts'

/** A started role: where it listens, and how to stop it. */
export interface RunningRole {
  readonly role: string
  /** The port it listens on (the real one when asked for port 0); undefined for the worker. */
  readonly port?: number
  /** Stops accepting, lets what is in flight finish, closes the stores. Idempotent. */
  stop(): Promise<void>
}

/** Back-off while waiting at start for the kv store or a peer's registration, within PIXMILL_KV_WAIT_SECONDS. */
export function kvWait(settings: { kvWaitSeconds: number }) {
  return { attempts: Number.MAX_SAFE_INTEGER, withinMs: settings.kvWaitSeconds * 1000, initialMs: 250, maxMs: 5000 } as const
}

export interface ServeOptions {
  readonly role: string
  readonly app: AnyElysia
  readonly listen: Address
  readonly log: Logger
  /** Registers `key` = `value` in kv once listening, waiting up to `waitSeconds` for the kv store. */
  readonly register?: {
    readonly kv: KvClient
    readonly key: string
    readonly value: string
    readonly waitSeconds: number
    /** The instance's registration lives this long unless the heartbeat (every third of it) renews it. Default 15. */
    readonly ttlSeconds?: number
    /**
     * Only `<key>/<value>`, never the plain key (the worker: nobody calls "the" worker). On an original kv, which would
     * keep it for ever, nothing is registered.
     */
    readonly instanceOnly?: boolean
  }
  /** Closes the role's stores, after the server stopped. */
  readonly close?: () => Promise<void>
  /** The registration's heartbeat and the bound on leaving kv at stop. Default systemClock. */
  readonly clock?: Clock
}

/** Listens, registers, and returns a handle whose stop() drains in-flight requests first. */
export async function serveRole(options: ServeOptions): Promise<RunningRole> {
  const { app, listen, log, role } = options
  const clock = options.clock ?? systemClock
  // A role that others find through kv is not ready until it is registered: /health says so until then, so that
  // whoever waits for it to be healthy can count on finding it in kv.
  let registered = options.register === undefined
  // Only where there is something to wait for: every hook is a cost on every request.
  if (!registered) {
    app.onRequest(({ request }) => {
      if (registered) return
      const path = new URL(request.url).pathname
      if (path === '/health' || path === '/readyz') return Response.json({ role, ok: false, reasons: ['registering in kv'] }, { status: 503 })
    })
  }
  app.listen({ hostname: listen.hostname, port: listen.port })
  const server = app.server
  if (!server) throw new Error(`${role}: could not listen on ${listen.text}`)
  log.info({ address: `${server.hostname}:${server.port}` }, `${role} listening`)
  // Roles of this process that call this one are answered by its app directly, at any address it is known by.
  const ownAddresses = [`${server.hostname}:${server.port}`]
  // Listening on every interface or on loopback, this port on this machine is ours under each loopback name.
  if (['0.0.0.0', '::', '[::]', 'localhost', '127.0.0.1', '::1', '[::1]'].includes(server.hostname ?? '')) {
    ownAddresses.push(`localhost:${server.port}`, `127.0.0.1:${server.port}`, `[::1]:${server.port}`)
  }
  // A role asked to listen on port 0 registers the port it was given.
  const registeredValue = options.register?.value.replace(/:0$/, `:${server.port}`)
  if (registeredValue !== undefined) ownAddresses.push(registeredValue)
  let inProcessCalls = 0
  let inProcessDrained: (() => void) | undefined
  const leaveProcess = serveInProcess(ownAddresses, async (request) => {
    inProcessCalls++
    try {
      return await app.handle(request)
    } finally {
      if (--inProcessCalls === 0) inProcessDrained?.()
    }
  })
  let stopping: Promise<void> | undefined
  let heartbeat: Cancel | undefined
  let instanceKey: string | undefined
  const running: RunningRole = {
    role,
    port: server.port,
    stop() {
      stopping ??= (async () => {
        log.info(`${role} stopping: finishing requests in flight`)
        heartbeat?.()
        leaveProcess()
        // Leave the registry at once rather than when the registration runs out; best effort, bounded.
        if (options.register && instanceKey) {
          const { kv } = options.register
          await orAfter(
            kv.remove(instanceKey).catch(() => {}),
            1000,
            undefined,
            clock,
          )
        }
        await server.stop(false)
        // Calls from roles of this process in flight finish too, as the server's own did.
        if (inProcessCalls > 0) await new Promise<void>((resolve) => (inProcessDrained = resolve))
        try {
          await options.close?.()
        } catch (error) {
          log.error({ err: error }, `${role}: closing its stores failed`)
        }
        // The spans of the last requests go out before the process does.
        await stopRoleTracer(role)
        log.info(`${role} stopped`)
      })()
      return stopping
    },
  }
  if (options.register) {
    const { kv, key, waitSeconds } = options.register
    const ttlSeconds = options.register.ttlSeconds ?? 15
    const value = registeredValue!
    // The plain key is the original protocol's (one address); `<key>/<address>` lists every live instance. An original
    // kv would keep such a pair for ever (it ignores `ttl`), listing this instance long after it is gone: there the
    // plain key alone, as the original roles register.
    const instanceOnly = options.register.instanceOnly === true
    const register = async () => {
      if (await kv.expiresPairs()) {
        await kv.set(`${key}/${value}`, value, ttlSeconds)
        instanceKey = `${key}/${value}`
      }
      if (!instanceOnly) await kv.set(key, value)
    }
    try {
      await withBackoff(register, { ...kvWait({ kvWaitSeconds: waitSeconds }), what: `registering ${key}=${value} in kv at ${kv.address}`, log })
    } catch (error) {
      await running.stop()
      throw new Error(
        `${role}: could not register in the kv store at ${kv.address} within ${waitSeconds} s (PIXMILL_KV_WAIT_SECONDS): ${(error as Error).message}`,
      )
    }
    registered = true
    log.info({ key, value }, `${role} registered in kv`)
    let failing = false
    heartbeat = clock.every(
      (ttlSeconds * 1000) / 3,
      () => {
        register().then(
          () => {
            if (failing) log.info({ key, value }, `${role} registered in kv again`)
            failing = false
          },
          (error) => {
            // The kv store is down: keep serving, keep trying; the peers still have our address cached.
            if (!failing) log.warn({ err: (error as Error).message }, `${role}: renewing the registration in kv failed; retrying`)
            failing = true
          },
        )
      },
      { unref: true },
    )
  }
  return running
}
