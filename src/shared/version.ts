// The version in package.json, read once for the build-info metric and the tracing resource.
import { readFileSync } from 'node:fs'

export const PACKAGE_VERSION: string = (() => {
  try {
    return String(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version ?? 'unknown')
  } catch {
    // a copy without its package.json
    return 'unknown'
  }
})()
