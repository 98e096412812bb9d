// The layers of src/: shared code knows no peer and no role, clients and plugins know only shared code, a role knows
// no other role and not how it is run. An import against them fails here, not in a review.
import { describe, expect, test } from 'bun:test'
import { dirname, join, relative, resolve } from 'node:path'

const SRC = resolve(import.meta.dir, '..', '..', 'src')

/** Which top folders of src/ each may import from (besides its own, and packages). */
const ALLOWED: Record<string, readonly string[]> = {
  shared: [],
  clients: ['shared'],
  plugins: ['shared'],
  roles: ['shared', 'clients', 'plugins'],
  runtime: ['shared', 'clients'],
  cli: ['shared', 'clients'],
}

/** Every relative import of every .ts/.js file under src/<folder>, as [file, imported path from src/]. */
async function importsOf(folder: string): Promise<Array<readonly [string, string]>> {
  const found: Array<readonly [string, string]> = []
  for await (const file of new Bun.Glob('**/*.{ts,js}').scan(join(SRC, folder))) {
    const path = join(SRC, folder, file)
    const text = await Bun.file(path).text()
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      found.push([relative(SRC, path), relative(SRC, resolve(dirname(path), match[1]!))])
    }
  }
  return found
}

describe('the layers of src/', () => {
  test.each(Object.keys(ALLOWED))('src/%s imports only what its layer may', async (folder) => {
    const imports = await importsOf(folder)
    expect(imports.length).toBeGreaterThan(0)
    const wrong = imports.filter(([, target]) => {
      const top = target.split('/')[0]!
      return top !== folder && !ALLOWED[folder]!.includes(top)
    })
    expect(wrong).toEqual([])
  })

  test('a role imports no other role', async () => {
    const wrong = (await importsOf('roles')).filter(([file, target]) => target.startsWith('roles/') && target.split('/')[1] !== file.split('/')[1])
    expect(wrong).toEqual([])
  })
})

describe('what the roles load', () => {
  const roles = ['kv', 'database', 'storage', 'master', 'worker', 'frontend']
  /** Runs `script` after importing every role's app, in a process of its own; answers the package files loaded then. */
  function loadedFiles(pkg: string, script = ''): string[] {
    const run = Bun.spawnSync(
      [
        'bun',
        '-e',
        `for (const role of ${JSON.stringify(roles)}) await import('${SRC}/roles/' + role + '/app.ts')
${script}
console.log(JSON.stringify(Object.keys(require.cache).filter((path) => path.includes('/${pkg}/')).map((path) => path.split('/${pkg}/')[1]).sort()))`,
      ],
      { cwd: resolve(SRC, '..') },
    )
    expect({ exitCode: run.exitCode, stderr: run.stderr.toString() }).toEqual({ exitCode: 0, stderr: '' })
    // The last line: a role's log lines may come before it.
    return JSON.parse(run.stdout.toString().trim().split('\n').at(-1)!) as string[]
  }

  test('prom-client’s metric classes, not its index (default metrics and the Pushgateway with node:https: ~7 MB each)', () => {
    const loaded = loadedFiles('prom-client')
    expect(loaded).toContain('lib/counter.js')
    expect(loaded).not.toContain('index.js')
    expect(loaded).not.toContain('lib/pushgateway.js')
    expect(loaded).not.toContain('lib/defaultMetrics.js')
  })

  test('@elysiajs/openapi’s Swagger page, not its index; its generator only when a document is asked for', () => {
    expect(loadedFiles('@elysiajs/openapi')).toEqual(['dist/swagger/index.mjs'])
    const asked = `const { createKvApp } = await import('${SRC}/roles/kv/app.ts')
const { openSqliteKvStore } = await import('${SRC}/roles/kv/sqlite-kv-store.ts')
const { createMetricsRegistry } = await import('${SRC}/plugins/metrics.ts')
const { createLogger } = await import('${SRC}/shared/logger.ts')
const { mkdtempSync } = await import('node:fs')
const app = createKvApp({ store: openSqliteKvStore(mkdtempSync('/tmp/pixmill-layers-')), log: createLogger('kv'), registry: createMetricsRegistry('kv') })
const answer = await app.handle(new Request('http://localhost/swagger/json'))
if (answer.status !== 200 || !(await answer.json()).paths['/get']) throw new Error('no document')`
    expect(loadedFiles('@elysiajs/openapi', asked)).toEqual(['dist/openapi.mjs', 'dist/swagger/index.mjs'])
  })

  test('@opentelemetry/core (~3 MB) only once a trace context is read or written', () => {
    expect(loadedFiles('@opentelemetry/core')).toEqual([])
    const traced = `const { extractTraceContext } = await import('${SRC}/shared/trace-context.ts')
if (!extractTraceContext(new Headers({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }))) throw new Error('no context')`
    expect(loadedFiles('@opentelemetry/core', traced)).toContain('dist/index.mjs')
  })
})
