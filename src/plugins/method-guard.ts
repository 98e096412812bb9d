// Wrong method on a known path: 405 with an Allow header, instead of Elysia's 404.
import type { AnyElysia } from 'elysia'
import { MethodNotAllowed } from '../shared/errors.ts'

/**
 * Adds a catch-all route for every path the app knows, answering 405 with the methods it does take.
 * Call it last, once every route is defined; Elysia tries the method's own route before the catch-all.
 */
export function withMethodGuard<App extends AnyElysia>(app: App): App {
  const methodsByPath = new Map<string, string[]>()
  for (const route of app.routes) {
    // CORS answers every preflight (OPTIONS) itself, on a wildcard route that a guard would turn into a 405 for all paths.
    if (route.method === 'ALL' || route.method === 'OPTIONS' || route.path.includes('*')) continue
    const methods = methodsByPath.get(route.path) ?? []
    methods.push(route.method)
    methodsByPath.set(route.path, methods)
  }
  for (const [path, methods] of methodsByPath) {
    // Elysia answers HEAD for every GET route by itself.
    const allow = [...new Set(methods.includes('GET') ? [...methods, 'HEAD'] : methods)].sort()
    app.all(
      path,
      (context: { request?: Request }) => {
        throw new MethodNotAllowed(context.request?.method ?? 'this method', path, allow)
      },
      { detail: { hide: true } },
    )
  }
  return app
}
