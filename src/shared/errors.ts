// One error family for every role: the status decides how the error plugin answers.

/** An error that carries the HTTP status it should be answered with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.name = new.target.name
  }
}

/** 400: the request itself is wrong. */
export class BadRequest extends HttpError {
  constructor(message: string) {
    super(400, message)
  }
}

/** 404: the thing asked for does not exist. */
export class NotFound extends HttpError {
  constructor(message: string) {
    super(404, message)
  }
}

/** 405: the path exists, the method does not. */
export class MethodNotAllowed extends HttpError {
  constructor(method: string, path: string, allow: readonly string[]) {
    super(405, `Method ${method} is not allowed on ${path}; use ${allow.join(', ')}.`, { Allow: allow.join(', ') })
  }
}

/** 409: the request is valid but the resource's state forbids it. */
export class Conflict extends HttpError {
  constructor(message: string) {
    super(409, message)
  }
}

/** 413: the body is larger than the configured limit. */
export class PayloadTooLarge extends HttpError {
  constructor(limit: number) {
    super(413, `The body is larger than the limit of ${limit} bytes.`)
  }
}

/** 415: the body is not of the expected kind. */
export class UnsupportedMediaType extends HttpError {
  constructor(message: string) {
    super(415, message)
  }
}

/** 429 with Retry-After: this client sent too many requests of a kind lately. */
export class TooManyRequests extends HttpError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, message, { 'Retry-After': String(retryAfterSeconds) })
  }
}

/** 503 with Retry-After: the role is busy, try later. */
export class TooBusy extends HttpError {
  constructor(message: string, retryAfterSeconds = 1) {
    super(503, message, { 'Retry-After': String(retryAfterSeconds) })
  }
}

/** 502/503: a peer role or the role's own store failed; not the caller's fault. */
export class DependencyUnavailable extends HttpError {
  constructor(
    message: string,
    status: 502 | 503 = 503,
    /** The request never reached the peer (connection refused), so sending it elsewhere cannot do it twice. */
    readonly notSent = false,
  ) {
    super(status, message)
  }
}

/** A body that starts with the contract's `Error:` prefix. */
export function errorText(message: string): string {
  return message.startsWith('Error:') ? message : `Error: ${message}`
}

/** 401: an internal endpoint called without the shared token. */
export class Unauthorized extends HttpError {
  constructor(
    message = 'This endpoint is internal: send Authorization: Bearer <PIXMILL_TOKEN>.',
    challenge: Record<string, string> = { 'WWW-Authenticate': 'Bearer realm="pixmill"' },
  ) {
    super(401, message, challenge)
  }
}

/** 408: the request body did not arrive in time. */
export class RequestTimeout extends HttpError {
  constructor(seconds: number) {
    super(408, `The body did not arrive within ${seconds} s.`, { Connection: 'close' })
  }
}

/**
 * 501: a peer does not offer an endpoint beyond the original protocol (an original role answers such a path
 * `404 page not found`). Callers degrade to what the original protocol allows instead of failing.
 */
export class NotOffered extends HttpError {
  constructor(
    message: string,
    /** The path the peer does not offer. */
    readonly path: string,
  ) {
    super(501, message)
  }
}

/** 507: the store has no room for the upload (its disk is below the free space kept). */
export class InsufficientStorage extends HttpError {
  constructor(message: string) {
    super(507, message)
  }
}
