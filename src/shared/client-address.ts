// Who sent a request, for the upload limit: the socket's address, or X-Forwarded-For where it can be believed.
import { isIP } from 'node:net'

/** `text` as an address (IPv4 dotted, IPv6 lower-case; an IPv4-mapped IPv6 as its IPv4; a port after it dropped), or undefined. */
export function parseAddress(text: string): string | undefined {
  let address = text.trim()
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(address)
  if (bracketed) address = bracketed[1]!
  else if (/^[\d.]+:\d{1,5}$/.test(address)) address = address.slice(0, address.lastIndexOf(':'))
  address = address.toLowerCase()
  const kind = isIP(address)
  if (kind === 0) return undefined
  const mapped = kind === 6 ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address) : null
  return mapped ? mapped[1] : address
}

/** The entries of X-Forwarded-For, nearest proxy last (several headers read as one list). */
export function forwardedFor(request: Request): string[] {
  const header = request.headers.get('x-forwarded-for')
  if (header === null) return []
  return header
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
}

export interface ClientAddressOptions {
  /** PIXMILL_TRUST_PROXY: how many proxies in front of this role add to X-Forwarded-For. 0: none, the socket counts. */
  readonly trustProxy: number
  /**
   * The caller proved itself a pixmill role (the token): a frontend passing an upload on names its own client as the
   * last X-Forwarded-For entry, which is then believed whatever `trustProxy` says.
   */
  readonly fromPeer?: boolean
}

/**
 * The client's address: from a peer, the last X-Forwarded-For entry; behind `trustProxy` proxies, the entry the
 * farthest trusted proxy added (the `trustProxy`-th from the right; the leftmost when there are fewer); otherwise, or
 * when that entry is not an address, the socket's. Entries further left were written by the client and are never
 * believed. Undefined when nothing is known (a call in-process).
 */
export function clientAddress(request: Request, socket: string | undefined, options: ClientAddressOptions): string | undefined {
  const hops = options.fromPeer ? 1 : options.trustProxy
  if (hops > 0) {
    const entries = forwardedFor(request)
    if (entries.length > 0) {
      const believed = parseAddress(entries[Math.max(0, entries.length - hops)]!)
      if (believed !== undefined) return believed
    }
  }
  return socket === undefined ? undefined : (parseAddress(socket) ?? socket)
}

/**
 * The limit's bucket for an address: an IPv4 address as it is, an IPv6 address by its /64 (what one subscriber usually
 * holds: counted by address, one machine could take a fresh allowance for every upload).
 */
export function clientBucket(address: string | undefined): string {
  if (address === undefined) return 'unknown'
  if (isIP(address) !== 6) return address
  const [head, tail = ''] = address.split('::') as [string, string?]
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}
