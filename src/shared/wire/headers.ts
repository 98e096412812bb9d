// Headers an image passes on from role to role, once: conditional and range requests on the way in, its answer's on the way out.

/** Request headers a download passes on, so that conditional and range requests keep working through master and frontend. */
export const IMAGE_REQUEST_HEADERS = ['if-none-match', 'range', 'if-range'] as const

/** Headers of a stored image's answer that master and frontend pass on to their caller. */
export const IMAGE_ANSWER_HEADERS = ['content-type', 'content-length', 'etag', 'last-modified', 'accept-ranges', 'content-range', 'cache-control'] as const

/** The headers among `names` that `from` has, as a plain record. */
export function pickHeaders(from: Headers | undefined, names: readonly string[]): Record<string, string> {
  const picked: Record<string, string> = {}
  for (const name of names) {
    const value = from?.get(name)
    if (value) picked[name] = value
  }
  return picked
}

/**
 * Storage's `/sendImage` answer carries the stored PNG's size from its IHDR (`512x512`): storage checked the header
 * (an original storage stores any body and sends no such header). The master passes uploads on unread only to a
 * storage that does.
 */
export const PNG_SIZE_HEADER = 'x-png-size'
