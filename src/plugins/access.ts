// Who may call a route, declared on the route itself: every route is internal (the token) unless it says otherwise.
import { type AnyElysia, type DocumentDecoration, Elysia } from 'elysia'

/**
 * - `internal`: the token (Bearer, or Basic with the token as the password); the default of an undeclared route.
 * - `operator-page`: internal, an HTML page a person opens: refused with the Basic challenge, so the browser asks.
 * - `public`: open.
 * - `keyed`: open at the gate; reads a private result, so the handler wants the task key (or the token).
 * - `form`: open at the gate; a browser form cannot send a header, so the handler checks the token from the form itself.
 */
export type Access = 'internal' | 'operator-page' | 'public' | 'keyed' | 'form'

/** Where a route's access is kept: in its OpenAPI operation, so the document says it too. */
export const ACCESS_FIELD = 'x-pixmill-access'

/** Access kinds that the gate lets through without the token. */
export const OPEN_AT_THE_GATE: ReadonlySet<Access> = new Set(['public', 'keyed', 'form'])

/** The `access` route option: `{ access: 'public' }` on a route, or on a guard around several. */
export function accessMacro() {
  return new Elysia({ name: 'pixmill.access' }).macro({
    // An OpenAPI extension field, which Elysia's type of `detail` does not list.
    access: (access: Access) => ({ detail: { [ACCESS_FIELD]: access } as DocumentDecoration }),
  })
}

/**
 * Declares `access` on every route of a third-party plugin, whose routes take no options of ours. (A guard around it
 * would scope the plugin's own hooks and its view of the app's routes to the guard.)
 */
export function withAccess<App extends AnyElysia>(plugin: App, access: Access): App {
  for (const route of plugin.routes) {
    const hooks = route.hooks as { detail?: Record<string, unknown> }
    hooks.detail = { ...hooks.detail, [ACCESS_FIELD]: access }
  }
  return plugin
}

/** A route's declared access, `internal` when it declares none. */
export function accessOf(route: { hooks: unknown }): Access {
  return ((route.hooks as { detail?: Record<string, unknown> }).detail?.[ACCESS_FIELD] as Access | undefined) ?? 'internal'
}

/** Each route's access by `METHOD path`, filled by finishRole once the routes are defined, read by the gate. */
export type AccessTable = Map<string, Access>
