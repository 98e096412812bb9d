// Schemas of the storage role's routes.
import { t } from 'elysia'
import { IdString } from '../../shared/wire/params.ts'
import { AREAS } from './image-store.ts'

/** `default: undefined`: UnionEnum would otherwise default a missing state to `working` instead of refusing it. */
export const AreaString = t.UnionEnum(AREAS, {
  default: undefined,
  error: `state must be one of ${AREAS.join(', ')}`,
  description: '`working`: uploaded, not yet processed; `finished`: processed',
})

export const ImageQuery = t.Object({ id: IdString, state: AreaString })

/**
 * The raw PNG body for the OpenAPI page, declared in `detail.requestBody` (a `body:` schema would make Elysia parse
 * it, and the plugin would overwrite this): "Try it out" then offers a file picker and sends the raw bytes.
 */
export const PngRequestBody = {
  required: true,
  description: 'The PNG file itself, as the raw body (any or no Content-Type)',
  content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
} as const

/** The answers of `/getImage` for the OpenAPI page (documentation only: a binary answer is not validated). */
export const GetImageResponses = {
  200: {
    description: 'The PNG bytes, with `ETag`; a `Range` request gets `206` with those bytes',
    content: { 'image/png': { schema: { type: 'string', format: 'binary' } } },
  },
  304: { description: 'Not modified: `If-None-Match` named the current `ETag`' },
  400: { description: 'Bad id or state', content: { 'text/plain': { schema: { type: 'string', example: 'Error: ...' } } } },
  404: { description: 'No such image', content: { 'text/plain': { schema: { type: 'string', example: 'Error: ...' } } } },
} as const
