// POST /submitTask: find the one PNG in the form and stream it to the master as it arrives, checking the form as it goes.
import type { MasterPublicClient } from '../../clients/master-public-client.ts'
import { declaredLength } from '../../shared/body-stream.ts'
import { BadRequest, HttpError, UnsupportedMediaType } from '../../shared/errors.ts'
import { hasPngSignature, PNG_HEADER_BYTES } from '../../shared/png-header.ts'
import { MultipartReader, multipartBoundary, type PartHeaders } from './multipart-reader.ts'

/** The form's file field, as the original frontend named it. */
export const FILE_FIELD = 'uploadfile'

/** The page's own form adds `respond=page` so that a browser without JavaScript is sent on to a status page. */
export const RESPOND_FIELD = 'respond'

/** Room for the form's boundaries, part headers and small fields on top of the file itself. */
export const FORM_OVERHEAD_BYTES = 64 * 1024

const MAX_TEXT_FIELD_BYTES = 1024

export interface Submission {
  readonly id: number
  /** The task key the master answered (private results). */
  readonly key?: string
  /** `page` when the form asked to be sent on to the HTML status page, else `text` (the contract's answer). */
  readonly respond: 'text' | 'page'
}

/** A size in words a person can use: `50 MiB`, `64 KiB`, `1.5 MiB`. */
export function humanBytes(n: number): string {
  const [unit, size] = n >= 1048576 ? ['MiB', n / 1048576] : n >= 1024 ? ['KiB', n / 1024] : ['bytes', n]
  return `${Number(size.toFixed(1))} ${unit}`
}

/** 413 with the limit in words a person can use. */
export function fileTooLarge(limit: number): HttpError {
  return new HttpError(413, `The file is larger than the limit of ${humanBytes(limit)} (${limit} bytes).`)
}

function unexpectedFile(part: PartHeaders): BadRequest {
  return part.name === FILE_FIELD
    ? new BadRequest(`The form has more than one file; send one PNG per request in the field \`${FILE_FIELD}\`.`)
    : new BadRequest(`The form has a file in the field ${JSON.stringify(part.name.slice(0, 40))}; send it in the field \`${FILE_FIELD}\`.`)
}

/**
 * Reads the form part by part: small text fields are read (only `respond` means anything), the file in `uploadfile`
 * is checked from its first bytes, then passed to the master as a stream. The stream to the master is closed only
 * after the rest of the form proved sound (no second file), so a bad form never leaves a task behind: the master drops
 * the task of an upload whose body fails.
 */
export async function acceptSubmission(
  request: Request,
  deps: { master: MasterPublicClient; maxUploadBytes: number /** The uploader, for the master's upload limit. */; clientAddress?: string },
): Promise<Submission> {
  const limit = deps.maxUploadBytes
  const boundary = multipartBoundary(request.headers.get('content-type'))
  if (boundary === undefined) {
    throw new UnsupportedMediaType(`Send a multipart/form-data form with the PNG in the field \`${FILE_FIELD}\` (as the page's upload form does).`)
  }
  const length = declaredLength(request)
  if (length !== undefined && length > limit + FORM_OVERHEAD_BYTES) throw fileTooLarge(limit)
  if (!request.body) throw new BadRequest(`The form is empty; put the PNG in the field \`${FILE_FIELD}\`.`)
  const form = new MultipartReader(request.body.getReader(), boundary)
  let respond: Submission['respond'] = 'text'
  const readField = async (part: PartHeaders) => {
    if (part.filename !== undefined) throw unexpectedFile(part)
    const value = await form.readText(MAX_TEXT_FIELD_BYTES)
    if (part.name === RESPOND_FIELD && value === 'page') respond = 'page'
  }
  try {
    let file: PartHeaders | undefined
    while (!file) {
      const part = await form.nextPart()
      if (part === undefined) throw new BadRequest(`The form has no file in the field \`${FILE_FIELD}\`.`)
      if (part.name === FILE_FIELD) file = part
      else await readField(part)
    }
    const name = JSON.stringify((file.filename || 'The file').slice(0, 80))
    const head: Uint8Array[] = []
    let seen = 0
    while (seen < PNG_HEADER_BYTES) {
      const chunk = await form.readChunk()
      if (chunk === undefined) break
      head.push(chunk)
      seen += chunk.byteLength
    }
    if (seen === 0) throw new BadRequest(file.filename === '' ? 'No file was chosen.' : `${name} is empty.`)
    const first = Buffer.concat(head)
    if (!hasPngSignature(first)) throw new UnsupportedMediaType(`${name} is not a PNG image (it does not start with the PNG signature).`)
    if (seen > limit) throw fileTooLarge(limit)

    let ownFailure: HttpError | undefined
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(first)
      },
      async pull(controller) {
        try {
          const chunk = await form.readChunk()
          if (chunk !== undefined) {
            seen += chunk.byteLength
            if (seen > limit) throw fileTooLarge(limit)
            return controller.enqueue(chunk)
          }
          for (let part = await form.nextPart(); part !== undefined; part = await form.nextPart()) {
            if (part.name === FILE_FIELD) throw unexpectedFile(part)
            await readField(part)
          }
          controller.close()
        } catch (error) {
          ownFailure = error instanceof HttpError ? error : new BadRequest((error as Error).message)
          controller.error(ownFailure)
        }
      },
    })
    try {
      return { ...(await deps.master.submit(body, { clientAddress: deps.clientAddress })), respond }
    } catch (error) {
      // The master saw its body fail; the reason is ours to tell.
      throw ownFailure ?? error
    }
  } finally {
    await form.cancel()
  }
}
