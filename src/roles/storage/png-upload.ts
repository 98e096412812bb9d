// A raw PNG upload, checked before anything touches the disk: its announced size, then its signature and IHDR.
import { collectionPace, declaredLength, type PeekedBody, peekBody } from '../../shared/body-stream.ts'
import { BadRequest, PayloadTooLarge, RequestTimeout } from '../../shared/errors.ts'
import { checkPngHead, PNG_HEADER_BYTES, type PngHeader } from '../../shared/png-header.ts'

/** The client went away (or its body stream broke) before the body was complete. */
export class UploadBrokenOff extends BadRequest {
  constructor() {
    super('The upload was broken off before the body was complete; nothing was stored.')
  }
}

const EMPTY = 'The body is empty: send the PNG file as the raw request body.'

/** An upload worth storing: its stream, and the header read from its first bytes. */
export interface PngUpload extends PeekedBody {
  readonly header: PngHeader
}

/**
 * The request body, once it is known to be worth storing: 413 at once when Content-Length announces more than
 * `maxBytes`, 400 when empty, then checkPngHead's answer (415 without the PNG signature, 400 without a valid IHDR).
 * The stream gives the whole body (the bytes peeked at included) and fails with PayloadTooLarge as soon as a body
 * without Content-Length passes the limit. The IHDR is checked here, not only the signature, because the master
 * passes an upload on unread once it knows this storage checks it (the `X-Png-Size` answer).
 */
export async function pngUploadBody(request: Request, maxBytes: number, deadlineSeconds?: number): Promise<PngUpload> {
  const length = declaredLength(request)
  if (length !== undefined && length > maxBytes) throw new PayloadTooLarge(maxBytes)
  if (request.body === null || length === 0) throw new BadRequest(EMPTY)
  let body: PeekedBody
  try {
    body = await peekBody(request.body, PNG_HEADER_BYTES, maxBytes, deadlineSeconds, collectionPace(length))
  } catch (error) {
    if (error instanceof PayloadTooLarge || error instanceof RequestTimeout) throw error
    throw new UploadBrokenOff()
  }
  if (body.head.byteLength === 0) throw new BadRequest(EMPTY)
  try {
    return { ...body, header: checkPngHead(body.head) }
  } catch (error) {
    await body.stream.cancel().catch(() => {})
    throw error
  }
}

/** What a failed store of `body` was at heart: the body's own failure (client gone, too large) comes first. */
export function uploadFailure(body: PeekedBody | undefined, error: unknown, maxBytes: number): unknown {
  const failure = body?.failure()
  if (failure === 'source-failed') return new UploadBrokenOff()
  if (failure === 'too-slow' && !(error instanceof RequestTimeout)) return new RequestTimeout(0)
  if (failure === 'too-large' && !(error instanceof PayloadTooLarge)) return new PayloadTooLarge(maxBytes)
  return error
}
