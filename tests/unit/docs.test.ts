// The documents in docs/ against the code: the OpenAPI documents as the apps make them, every setting the loader reads
// in settings.md, and every route of every role in protocol.md.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { buildRoleApps, type DocumentedRole, OPENAPI_DIR, ROLES } from '../../scripts/openapi.ts'
import { loadSettings } from '../../src/shared/config.ts'

const ROOT = resolve(import.meta.dir, '..', '..')
const docs = (name: string) => readFileSync(join(ROOT, 'docs', name), 'utf8')
const REGENERATE = 'run `bun run docs:openapi` and commit docs/openapi/'

// Every role's app, built once for the whole file as scripts/openapi.ts builds them.
let dir: string
let built: ReturnType<typeof buildRoleApps>
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pixmill-docs-test-'))
  built = buildRoleApps(dir)
})
afterAll(async () => {
  await built.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('docs/openapi/*.json', () => {
  test('each role’s document is what its app serves on /swagger/json', async () => {
    // Made by a process of their own, as `bun run docs:openapi` makes them (see its --print).
    const generator = Bun.spawn(['bun', 'scripts/openapi.ts', '--print'], { cwd: ROOT, stdout: 'pipe', stderr: 'inherit' })
    const made = JSON.parse(await new Response(generator.stdout).text()) as Record<DocumentedRole, string>
    expect(await generator.exited).toBe(0)
    const kept = readdirSync(OPENAPI_DIR)
      .filter((name) => name.endsWith('.json'))
      .sort()
    const expected = ROLES.map((role) => `${role}.json`).sort()
    if (kept.join() !== expected.join()) {
      throw new Error(`docs/openapi/ holds ${kept.join(', ') || 'nothing'}, not ${expected.join(', ')}: ${REGENERATE}`)
    }
    const stale = ROLES.filter((role) => readFileSync(join(OPENAPI_DIR, `${role}.json`), 'utf8') !== made[role])
    if (stale.length > 0) {
      const first = stale[0]!
      const keptLines = readFileSync(join(OPENAPI_DIR, `${first}.json`), 'utf8').split('\n')
      const madeLines = made[first]!.split('\n')
      const line = madeLines.findIndex((text, i) => text !== keptLines[i])
      const where = `${first}.json line ${line + 1}: kept ${JSON.stringify(keptLines[line])}, made ${JSON.stringify(madeLines.slice(line, line + 4).join(' '))}`
      throw new Error(`The OpenAPI documents of ${stale.join(', ')} differ from the routes in src/roles (${where}): ${REGENERATE}`)
    }
    // Nothing of this run in them (the data folder of the build), so that a build elsewhere writes the same text.
    for (const role of ROLES) expect(made[role]).not.toContain(tmpdir())
  })
})

/** The variables the settings loader reads: it is asked, with an environment that records every name looked up. */
function loaderVariables(): string[] {
  const names = new Set<string>()
  const env = new Proxy({} as Record<string, string | undefined>, {
    get(_target, name) {
      if (typeof name === 'string') names.add(name)
      return undefined
    },
  })
  loadSettings(env)
  return [...names].sort()
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

describe('docs/settings.md', () => {
  const settings = docs('settings.md')

  test('has a row for every variable the settings loader reads', () => {
    const variables = loaderVariables()
    // The loader reads its environment through the object it is given: if it did not, this test would check nothing.
    expect(variables).toContain('PIXMILL_TOKEN')
    expect(variables.length).toBeGreaterThanOrEqual(20)
    const missing = variables.filter((name) => !new RegExp(`^\\| \`${name}\` \\|`, 'm').test(settings))
    expect(missing).toEqual([])
  })

  test('names every PIXMILL_, OTEL_ and S3_ variable the code mentions', () => {
    const mentioned = new Map<string, string>()
    for (const file of filesUnder(join(ROOT, 'src'))) {
      if (!/\.(ts|js)$/.test(file)) continue
      for (const [name] of readFileSync(file, 'utf8').matchAll(/\b(?:PIXMILL|OTEL|S3)_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_])/g)) {
        if (!mentioned.has(name)) mentioned.set(name, relative(ROOT, file))
      }
    }
    expect(mentioned.size).toBeGreaterThan(0)
    const missing = [...mentioned].filter(([name]) => !settings.includes(`\`${name}\``)).map(([name, file]) => `${name} (${file})`)
    expect(missing).toEqual([])
  })
})

/** protocol.md's `## ` sections by heading. */
function sections(text: string): Map<string, string> {
  const found = new Map<string, string>()
  for (const part of text.split(/^## /m).slice(1)) {
    const end = part.indexOf('\n')
    found.set(part.slice(0, end).trim(), part.slice(end + 1))
  }
  return found
}

describe('docs/protocol.md', () => {
  const protocol = sections(docs('protocol.md'))
  const common = protocol.get('Every role with a port')

  /** `METHOD /path` of every route of the role's app (not the method guard's catch-alls). */
  const routesOf = (role: DocumentedRole) => built.apps[role].routes.filter((route) => route.method !== 'ALL').map((route) => `${route.method} ${route.path}`)

  test('has a section for every role, and one for the routes they all share', () => {
    expect(common).toBeDefined()
    for (const role of ROLES) expect([...protocol.keys()]).toContain(role)
  })

  test('names every route of every role, in the role’s section or the shared one', () => {
    const missing = ROLES.flatMap((role) => {
      const text = `${protocol.get(role) ?? ''}\n${common ?? ''}`
      return routesOf(role)
        .filter((route) => !text.includes(`\`${route}\``))
        .map((route) => `${role}: ${route}`)
    })
    expect(missing).toEqual([])
  })

  test('names no route a role does not have', () => {
    const commonRoutes = new Set(routesOf('kv').filter((route) => ROLES.every((role) => routesOf(role).includes(route))))
    const extra = ROLES.flatMap((role) => {
      const routes = new Set(routesOf(role))
      const named = [...(protocol.get(role) ?? '').matchAll(/`(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\/[^`\s?]*)`/g)].map((m) => `${m[1]} ${m[2]}`)
      return named.filter((route) => !routes.has(route)).map((route) => `${role}: ${route}`)
    })
    const sharedExtra = [...(common ?? '').matchAll(/`(GET|POST) (\/[^`\s?]*)`/g)].map((m) => `${m[1]} ${m[2]}`).filter((route) => !commonRoutes.has(route))
    expect([...extra, ...sharedExtra]).toEqual([])
  })
})
