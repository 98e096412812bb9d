// The kv role: the registry the other roles find each other through.
import { t } from 'elysia'
import { finishRole, roleKit } from '../../plugins/role-kit.ts'
import { NotFound } from '../../shared/errors.ts'
import type { Logger } from '../../shared/logger.ts'
import { Gauge, type Registry } from '../../shared/prom.ts'
import { ErrorText, Success } from '../../shared/wire/params.ts'
import type { KvStore } from './kv-store.ts'
import { KeyQuery, ListQuery, PairQuery } from './model.ts'

export interface KvAppDeps {
  /** PIXMILL_TOKEN: when set, the internal routes want it. */
  readonly token?: string
  /** PIXMILL_IDLE_TIMEOUT_SECONDS. */
  readonly idleTimeoutSeconds?: number
  readonly store: KvStore
  readonly log: Logger
  readonly registry: Registry
}

function found(key: string, value: string | undefined): string {
  if (value === undefined) throw new NotFound(`No value for key ${JSON.stringify(key)}.`)
  return value
}

/** Builds the kv app; it never listens (the entry file or the launcher does). */
export function createKvApp({ store, log, registry, token, idleTimeoutSeconds }: KvAppDeps) {
  new Gauge({
    name: 'pixmill_kv_pairs',
    help: 'Pairs held by the kv store.',
    registers: [registry],
    async collect() {
      // A store that is down keeps the last figure: /metrics must still answer.
      const pairs = await store.list().catch(() => undefined)
      if (pairs) this.set(pairs.length)
    },
  })
  const app = roleKit({
    role: 'kv',
    // `/set` and `/remove` are internal; the lookups are open, as every role and client of the original reads them.
    token,
    idleTimeoutSeconds,
    // kv calls no peer and logs nothing per request: ids only where the caller sent one, or on an error.
    requestIds: 'echo',
    description: 'Key-value store and service registry: roles register `<role>Address` here and look each other up.',
    log,
    registry,
    health: async () => ({ ok: await store.healthy() }),
  })
    .get('/get', async ({ query }) => found(query.key, await store.get(query.key)), {
      access: 'public',
      query: KeyQuery,
      response: { 200: t.String({ description: 'The value, as text' }), 404: ErrorText },
      detail: { summary: 'The value of a key', tags: ['kv'] },
    })
    .post(
      '/set',
      async ({ query }) => {
        await store.set(query.key, query.value, query.ttl === undefined ? undefined : { ttlSeconds: Number(query.ttl) })
        return 'success' as const
      },
      {
        query: PairQuery,
        response: { 200: Success, 400: ErrorText },
        detail: { summary: 'Set a key to a value (replacing any old value), optionally for `ttl` seconds', tags: ['kv'] },
      },
    )
    .delete(
      '/remove',
      async ({ query }) => {
        await store.remove(query.key)
        return 'success' as const
      },
      {
        query: KeyQuery,
        response: { 200: Success, 400: ErrorText },
        detail: { summary: 'Remove a key (success whether or not it was there)', tags: ['kv'] },
      },
    )
    .get(
      '/list',
      async ({ query }) => {
        const pairs = await store.list(query.prefix)
        return pairs.map(([key, value]) => `${key} : ${value}\n`).join('')
      },
      {
        access: 'public',
        query: ListQuery,
        response: { 200: t.String({ description: 'One `key : value` line per pair' }) },
        detail: { summary: 'Every pair, one `key : value` line each', tags: ['kv'] },
      },
    )
  return finishRole(app)
}
