// A Swagger page on /swagger from the route schemas, with its scripts served from node_modules (works offline).

import { fileURLToPath } from 'node:url'
import { openapi } from '@elysiajs/openapi'
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

/** `/swagger` (the page), `/swagger/json` (the OpenAPI document) and the page's two assets. */
export function swaggerPlugin({ title, description, taskKeys = false }: SwaggerOptions) {
  // The page and the document are open: they describe the API, and say which routes want the token.
  return new Elysia({ name: `pixmill.swagger` })
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
        openapi({
          provider: 'swagger-ui',
          path: '/swagger',
          specPath: '/swagger/json',
          documentation: {
            info: { title, version: '0.1.0', description },
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
          },
          exclude: { paths: ['/swagger/assets/swagger-ui-bundle.js', '/swagger/assets/swagger-ui.css'] },
          swagger: {
            cdn: '/swagger/assets/swagger-ui-bundle.js',
            theme: '/swagger/assets/swagger-ui.css',
            autoDarkMode: false,
          },
        }),
        'public',
      ),
    )
}
