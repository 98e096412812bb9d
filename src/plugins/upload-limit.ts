// The upload limit of a role (PIXMILL_UPLOADS_PER_MINUTE): who sent an upload, and whether they may send one now.
import { clientAddress, clientBucket } from '../shared/client-address.ts'
import { TooManyRequests } from '../shared/errors.ts'
import { createRateLimiter } from '../shared/rate-limit.ts'
import { bearerMatches, tokenDigest } from './auth.ts'

export interface UploadLimitOptions {
  /** Uploads one client may make per minute; undefined: no limit. */
  readonly uploadsPerMinute?: number
  /** PIXMILL_TRUST_PROXY. Default 0. */
  readonly trustProxy?: number
  /** PIXMILL_TOKEN: a caller with it (the frontend passing an upload on) names its client in X-Forwarded-For. */
  readonly token?: string
  /** Monotonic milliseconds, for tests. */
  readonly now?: () => number
}

/** What a role's server can say of a request's connection (Bun's `server.requestIP`); null in-process. */
type Server = { requestIP(request: Request): { address: string } | null } | null | undefined

export function createUploadLimit(options: UploadLimitOptions) {
  const perMinute = options.uploadsPerMinute
  const limiter = perMinute === undefined ? undefined : createRateLimiter({ perMinute, now: options.now })
  const expected = options.token === undefined ? undefined : tokenDigest(options.token)
  return {
    /**
     * Admits one upload of `request`'s client, or throws TooManyRequests (429 with Retry-After) when it is over its
     * allowance; answers the client's address either way it is known (for passing it on), undefined when it is not.
     */
    admit(request: Request, server: Server): string | undefined {
      const fromPeer = expected !== undefined && request.headers.has('x-forwarded-for') && bearerMatches(request.headers.get('authorization'), expected)
      const client = clientAddress(request, server?.requestIP(request)?.address, { trustProxy: options.trustProxy ?? 0, fromPeer })
      const wait = limiter?.take(clientBucket(client)) ?? 0
      if (wait > 0) throw new TooManyRequests(`Too many uploads from this address: at most ${perMinute} a minute; try again in ${wait} s.`, wait)
      return client
    },
  }
}
