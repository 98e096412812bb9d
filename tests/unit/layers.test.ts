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
  test('prom-client’s metric classes, not its index (default metrics and the Pushgateway with node:https: ~7 MB each)', () => {
    const roles = ['kv', 'database', 'storage', 'master', 'worker', 'frontend']
    const script = `for (const role of ${JSON.stringify(roles)}) await import('${SRC}/roles/' + role + '/app.ts')
console.log(JSON.stringify(Object.keys(require.cache).filter((path) => path.includes('/prom-client/')).map((path) => path.split('/prom-client/')[1]).sort()))`
    const run = Bun.spawnSync(['bun', '-e', script], { cwd: resolve(SRC, '..') })
    expect(run.exitCode).toBe(0)
    const loaded = JSON.parse(run.stdout.toString()) as string[]
    expect(loaded).toContain('lib/counter.js')
    expect(loaded).not.toContain('index.js')
    expect(loaded).not.toContain('lib/pushgateway.js')
    expect(loaded).not.toContain('lib/defaultMetrics.js')
  })
})
