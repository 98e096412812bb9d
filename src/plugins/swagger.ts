// A Swagger page on /swagger from the route schemas, with its scripts served from node_modules (works offline).

import { fileURLToPath } from 'node:url'
import type { ElysiaOpenAPIConfig } from '@elysiajs/openapi'
import { SwaggerUIRender } from '@elysiajs/openapi/swagger'
import { Elysia } from 'elysia'
import { accessMacro, withAccess } from './access.ts'

const asset = (name: string) => fileURLToPath(import.meta.resolve(`swagger-ui-dist/${name}`))
const BUNDLE = asset('swagger-ui-bundle.js')
const CSS = asset('swagger-ui.css')

/** Names of the security schemes in the OpenAPI documents, as routes' `security` refers to them. */
export const BEARER_SCHEME = 'bearer'
export const TASK_KEY_SCHEME = 'taskKey'

export interface SwaggerOptions {
  readonly title: string
  readonly description: string
  /** Declare the task key scheme (X-Task-Key) too: the role reads private results. Default false. */
  readonly taskKeys?: boolean
}

/** The OpenAPI version of the documents, @elysiajs/openapi's default. */
const OPENAPI_VERSION = '3.1.2'

/**
 * `/swagger` (the page), `/swagger/json` (the OpenAPI document) and the page's two assets: what @elysiajs/openapi's
 * `openapi()` plugin serves, made of its page and its generator. The plugin's entry also loads its Scalar page and its
 * generator from TypeScript types, about 2.4 MB of resident memory in every role; the generator alone is loaded on the
 * first request for the document, which most roles never answer.
 */
export function swaggerPlugin({ title, description, taskKeys = false }: SwaggerOptions) {
  const info = { title, description, version: '0.1.0' }
  const documentation = {
    info,
    // The page's Authorize button offers these; each route's `security` says which one it takes.
    components: {
      securitySchemes: {
        [BEARER_SCHEME]: {
          type: 'http',
          scheme: 'bearer',
          description: 'The roles’ shared token (PIXMILL_TOKEN), for internal and operators’ endpoints',
        },
        ...(taskKeys
          ? {
              [TASK_KEY_SCHEME]: {
                type: 'apiKey',
                in: 'header',
                name: 'X-Task-Key',
                description: 'The key an upload answered in X-Task-Key (PIXMILL_PRIVATE_RESULTS); `key=` in the query does the same',
              },
            }
          : {}),
      },
    },
  } as const
  const exclude: ElysiaOpenAPIConfig['exclude'] = { paths: ['/swagger/assets/swagger-ui-bundle.js', '/swagger/assets/swagger-ui.css'] }
  const page = SwaggerUIRender(info, {
    url: 'swagger/json',
    dom_id: '#swagger-ui',
    version: 'latest',
    cdn: '/swagger/assets/swagger-ui-bundle.js',
    theme: '/swagger/assets/swagger-ui.css',
    autoDarkMode: false,
  })
  // The page and the document are open: they describe the API, and say which routes want the token.
  const app = new Elysia({ name: `pixmill.swagger` })
  /** The document, made again only when routes were added since (as the plugin does). */
  let cached: { routes: number; document: object } | undefined
  async function openApiDocument(): Promise<object> {
    const routes = app.routes.length
    if (cached?.routes === routes) return cached.document
    const { toOpenAPISchema } = await import('@elysiajs/openapi/openapi')
    const { paths, components } = toOpenAPISchema(app, exclude, undefined, undefined, OPENAPI_VERSION)
    const document = {
      ...documentation,
      openapi: OPENAPI_VERSION,
      paths,
      components: { ...documentation.components, schemas: components.schemas },
    }
    cached = { routes, document }
    return document
  }
  return app
    .use(accessMacro())
    .get(
      '/swagger/assets/swagger-ui-bundle.js',
      () => new Response(Bun.file(BUNDLE), { headers: { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=86400' } }),
      { access: 'public', detail: { hide: true } },
    )
    .get(
      '/swagger/assets/swagger-ui.css',
      () => new Response(Bun.file(CSS), { headers: { 'content-type': 'text/css; charset=utf-8', 'cache-control': 'public, max-age=86400' } }),
      { access: 'public', detail: { hide: true } },
    )
    .use(
      withAccess(
        new Elysia({ name: 'pixmill.swagger.document' })
          .get('/swagger', () => new Response(page, { headers: { 'content-type': 'text/html; charset=utf8' } }), { detail: { hide: true } })
          .get('/swagger/json', openApiDocument, { detail: { hide: true } }),
        'public',
      ),
    )
}
