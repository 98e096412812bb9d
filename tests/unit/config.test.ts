// Settings: defaults, validation naming the variable, and the back-end URLs.
import { describe, expect, test } from 'bun:test'
import { ConfigError, loadSettings } from '../../src/shared/config.ts'

describe('settings', () => {
  test('every PIXMILL_* variable has its documented default', () => {
    const s = loadSettings({})
    expect(s).toMatchObject({
      leaseSeconds: 120,
      maxAttempts: 3,
      maxUploadBytes: 52_428_800,
      maxPixels: 50_000_000,
      kvWaitSeconds: 60,
      token: undefined,
      idleTimeoutSeconds: 30,
      uploadTimeoutSeconds: 300,
      maxUploadsInFlight: 32,
      taskTimeoutSeconds: 300,
      registrationTtlSeconds: 15,
      kvUrl: undefined,
      databaseUrl: undefined,
      storageUrl: undefined,
      retentionSeconds: 604_800,
      storageCacheBytes: 32 * 1024 * 1024,
      minFreeBytes: 1024 ** 3,
      logLevel: 'info',
      pngEffort: 'fast',
      durability: 'process',
      privateResults: false,
      uploadsPerMinute: undefined,
      trustProxy: 0,
      corsOrigins: undefined,
    })
    expect(s.dataDir).toEndWith('/data')
    expect(Object.isFrozen(s)).toBe(true)
  })

  test.each([
    ['PIXMILL_LEASE_SECONDS', '0'],
    ['PIXMILL_LEASE_SECONDS', '1.5'],
    ['PIXMILL_MAX_ATTEMPTS', 'three'],
    ['PIXMILL_MAX_UPLOAD_BYTES', '-5'],
    ['PIXMILL_IDLE_TIMEOUT_SECONDS', '256'],
    ['PIXMILL_TOKEN', 'short'],
    ['PIXMILL_TOKEN', 'has a space in it somewhere'],
    ['PIXMILL_KV_URL', 'http://localhost:6379'],
    ['PIXMILL_DATABASE_URL', 'not a url'],
    ['PIXMILL_STORAGE_URL', 'file:///tmp'],
    ['PIXMILL_LOG_LEVEL', 'verbose'],
    ['PIXMILL_PNG_EFFORT', 'best'],
    ['PIXMILL_DURABILITY', 'fsync'],
    ['PIXMILL_RETENTION_SECONDS', '-1'],
    ['PIXMILL_MIN_FREE_BYTES', '5 GB'],
    ['PIXMILL_MIN_FREE_BYTES', '100%'],
    ['PIXMILL_STORAGE_CACHE_BYTES', 'lots'],
    ['PIXMILL_PRIVATE_RESULTS', 'yes please'],
    ['PIXMILL_PRIVATE_RESULTS', '2'],
    ['PIXMILL_UPLOADS_PER_MINUTE', '0'],
    ['PIXMILL_UPLOADS_PER_MINUTE', '10/s'],
    ['PIXMILL_TRUST_PROXY', 'true'],
    ['PIXMILL_TRUST_PROXY', '11'],
    ['PIXMILL_TRUST_PROXY', '-1'],
    ['PIXMILL_CORS_ORIGINS', 'app.example'],
    ['PIXMILL_CORS_ORIGINS', 'https://app.example/'],
    ['PIXMILL_CORS_ORIGINS', 'https://app.example/path'],
    ['PIXMILL_CORS_ORIGINS', 'ftp://files.example'],
    ['PIXMILL_CORS_ORIGINS', 'https://a.example,*'],
    ['PIXMILL_CORS_ORIGINS', 'https://a.example,,https://b.example'],
  ])('%s=%p fails at start, naming the variable', (name, value) => {
    expect(() => loadSettings({ [name]: value })).toThrow(ConfigError)
    expect(() => loadSettings({ [name]: value })).toThrow(name)
  })

  test('the free disk kept is bytes or a share of the disk', () => {
    expect(loadSettings({ PIXMILL_MIN_FREE_BYTES: '5%' }).minFreeBytes).toEqual({ percent: 5 })
    expect(loadSettings({ PIXMILL_MIN_FREE_BYTES: '2.5%' }).minFreeBytes).toEqual({ percent: 2.5 })
    expect(loadSettings({ PIXMILL_MIN_FREE_BYTES: '0' }).minFreeBytes).toBe(0)
  })

  test('back-end URLs of the right scheme are taken as given', () => {
    const s = loadSettings({ PIXMILL_KV_URL: 'redis://127.0.0.1:6390', PIXMILL_DATABASE_URL: 'postgres://u@h:5433/db', PIXMILL_STORAGE_URL: 's3://bucket/pre' })
    expect([s.kvUrl, s.databaseUrl, s.storageUrl]).toEqual(['redis://127.0.0.1:6390', 'postgres://u@h:5433/db', 's3://bucket/pre'])
  })

  test('private results, the upload limit, trusted proxies and CORS origins are read as given', () => {
    const s = loadSettings({
      PIXMILL_PRIVATE_RESULTS: '1',
      PIXMILL_UPLOADS_PER_MINUTE: '30',
      PIXMILL_TRUST_PROXY: '2',
      PIXMILL_CORS_ORIGINS: 'https://app.example, http://localhost:5173,https://app.example',
    })
    expect([s.privateResults, s.uploadsPerMinute, s.trustProxy]).toEqual([true, 30, 2])
    expect(s.corsOrigins).toEqual(['https://app.example', 'http://localhost:5173'])
    expect(loadSettings({ PIXMILL_CORS_ORIGINS: '*' }).corsOrigins).toBe('*')
    expect(loadSettings({ PIXMILL_PRIVATE_RESULTS: 'true' }).privateResults).toBe(true)
    expect(loadSettings({ PIXMILL_PRIVATE_RESULTS: '0' }).privateResults).toBe(false)
  })
})
