// A real S3-compatible server for tests: s3rver in a child Bun process, patched where it falls short of S3.

import crypto, { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, readdirSync } from 'node:fs'
import { type FileHandle, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Subprocess } from 'bun'
import { tempDir } from './temp.ts'

/** s3rver's fixed credentials. */
const ACCESS_KEY = 'S3RVER'
const BUCKET = 'pixmill-test'
/** Where s3rver keeps the parts of multipart uploads not yet completed or aborted: one folder per upload. */
const UPLOADS = '._S3rver_uploads'

export interface S3Server {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string
  /** The S3_* variables Bun's S3 client reads, for a child process. */
  readonly env: Readonly<Record<string, string>>
  /** The same as S3Client options, for a store opened in this process. */
  readonly client: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string }
  /** `s3://<bucket>/<prefix>`, as PIXMILL_STORAGE_URL takes it. */
  readonly url: string
  /** The folder s3rver keeps the bucket in. */
  readonly directory: string
  /** Multipart uploads begun and neither completed nor aborted (S3's ListMultipartUploads, read off s3rver's disk). */
  pendingUploads(): string[]
  /** Kills the server, keeping its data (S3 down). */
  kill(): Promise<void>
  /** Starts it again on the same port and data (S3 back). */
  restart(): Promise<void>
  /** Kills the server and removes its data. */
  stop(): Promise<void>
}

/**
 * Starts s3rver on a free port over a fresh folder with one bucket; `prefix` (default `pixmill`) goes into `url`.
 * It runs in its own process (`bun tests/helpers/s3-server.ts --serve ...`) so that the tests measure the store's
 * process alone and can kill the server to play "S3 down".
 */
export async function startS3Server(prefix = 'pixmill'): Promise<S3Server> {
  const dir = tempDir('pixmill-s3rver-')
  let port = 0
  let child: Subprocess<'pipe', 'pipe', 'inherit'> | undefined
  const launch = async () => {
    child = Bun.spawn(['bun', import.meta.path, '--serve', dir.path, String(port), BUCKET], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
    const reader = child.stdout.getReader()
    const first = await reader.read()
    reader.releaseLock()
    if (first.done) throw new Error(`s3rver did not start (exit ${await child.exited})`)
    port = (JSON.parse(new TextDecoder().decode(first.value)) as { port: number }).port
    void child.stdout.pipeTo(new WritableStream()).catch(() => {})
  }
  const kill = async () => {
    child?.kill('SIGKILL')
    await child?.exited
    child = undefined
  }
  await launch()
  const endpoint = `http://127.0.0.1:${port}`
  return {
    endpoint,
    env: { S3_ENDPOINT: endpoint, S3_ACCESS_KEY_ID: ACCESS_KEY, S3_SECRET_ACCESS_KEY: ACCESS_KEY, S3_REGION: 'us-east-1' },
    client: { endpoint, accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY, region: 'us-east-1' },
    url: `s3://${BUCKET}/${prefix}`,
    directory: dir.path,
    pendingUploads() {
      const uploads = join(dir.path, BUCKET, UPLOADS)
      return existsSync(uploads) ? readdirSync(uploads) : []
    },
    kill,
    restart: launch,
    async stop() {
      await kill()
      dir.remove()
    },
  }
}

// ---- The child: s3rver, with three patches that make it keep S3's promises where the tests depend on them. ----

/** A s3rver store (lib/stores/filesystem.js), as far as the patches use it. */
interface FilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string
  putMetadata(bucket: string, key: string, metadata: object): Promise<void>
  putObject(object: { bucket: string; key: string; content: NodeJS.ReadableStream | Buffer; metadata: object }): Promise<{ size: number; md5: string }>
  getMetadata(bucket: string, key: string): Promise<Record<string, unknown>>
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<unknown>
  putPart(bucket: string, uploadId: string, partNumber: number, content: NodeJS.ReadableStream): Promise<unknown>
}
type S3ObjectClass = new (bucket: string, key: string, content: unknown, metadata: object) => { range?: object }
type Middleware = (
  ctx: { method: string; path: string; query: Record<string, string>; status: number; type: string; body: unknown },
  next: () => Promise<void>,
) => Promise<void>

/** The MD5 of an open file, read through its handle (the same inode whatever is renamed over its path meanwhile). */
async function md5Of(handle: FileHandle): Promise<string> {
  const hash = createHash('md5')
  const buffer = Buffer.alloc(1 << 20)
  for (let position = 0; ; ) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position)
    if (bytesRead === 0) return hash.digest('hex')
    hash.update(buffer.subarray(0, bytesRead))
    position += bytesRead
  }
}

/**
 * s3rver writes an object in place (truncate, then stream) and reads its size, MD5 and bytes in separate steps, so a
 * reader can see part of a new object, or the old ETag with new bytes; S3 replaces an object atomically. Patched: the
 * object is written to a temp file and renamed into place, its MD5 kept beside it under its inode number, and every
 * read describes and streams one open file.
 */
function makeAtomic(store: FilesystemStore, S3Object: S3ObjectClass): void {
  const described = async (bucket: string, key: string, handle: FileHandle) => {
    const path = store.getResourcePath(bucket, key, 'object')
    const info = await handle.stat()
    const [inode, saved] = (await readFile(`${path}.md5`, 'utf8').catch(() => '')).split(' ')
    const md5 = inode === String(info.ino) && saved?.length === 32 ? saved : await md5Of(handle)
    const stored = await readFile(store.getResourcePath(bucket, key, 'metadata.json'), 'utf8').then(JSON.parse, () => ({}))
    return { ...stored, etag: JSON.stringify(md5), 'last-modified': info.mtime.toUTCString(), 'content-length': info.size }
  }
  store.putObject = async (object) => {
    const path = store.getResourcePath(object.bucket, object.key, 'object')
    await mkdir(dirname(path), { recursive: true })
    const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`
    const hash = createHash('md5')
    let size = 0
    const count = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        size += chunk.length
        hash.update(chunk)
        done(null, chunk)
      },
    })
    try {
      const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content
      await pipeline(source, count, createWriteStream(temp, { flags: 'wx' }))
      const md5 = hash.digest('hex')
      await store.putMetadata(object.bucket, object.key, object.metadata)
      const { ino } = await stat(temp)
      await rename(temp, path)
      await writeFile(`${path}.md5`, `${ino} ${md5}`)
      return { size, md5 }
    } finally {
      await rm(temp, { force: true })
    }
  }
  store.getMetadata = async (bucket, key) => {
    const handle = await open(store.getResourcePath(bucket, key, 'object'), 'r')
    try {
      return await described(bucket, key, handle)
    } finally {
      await handle.close()
    }
  }
  store.getObject = async (bucket, key, options) => {
    let handle: FileHandle
    try {
      handle = await open(store.getResourcePath(bucket, key, 'object'), 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
    const metadata = await described(bucket, key, handle)
    // The rest as s3rver's own getObject does it, but reading the handle described above.
    const lastByte = Math.max(0, Number(metadata['content-length']) - 1)
    const range = { start: options?.start || 0, end: Math.min(options?.end || Infinity, lastByte) }
    const satisfiable = range.start >= 0 && range.end >= range.start
    if (!satisfiable) await handle.close()
    const content = satisfiable ? handle.createReadStream({ start: range.start, end: range.end }) : null
    const object = new S3Object(bucket, key, content, metadata)
    if (options && (options.start !== undefined || options.end)) object.range = range
    return object
  }
  // A part sent after its upload was aborted must not bring the upload back (s3rver would create its folder again).
  const putPart = store.putPart.bind(store)
  store.putPart = async (bucket, uploadId, partNumber, content) => {
    if (!existsSync(join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, 'key'))) throw new Error(`no upload ${uploadId}`)
    return putPart(bucket, uploadId, partNumber, content)
  }
}

/** s3rver 3.7.1 answers AbortMultipartUpload (DELETE ?uploadId) with 405 and keeps the parts; S3 drops them. */
function abortMultipartUpload(directory: string): Middleware {
  return async (ctx, next) => {
    const uploadId = ctx.query.uploadId
    if (ctx.method !== 'DELETE' || uploadId === undefined) return next()
    const folder = join(directory, ctx.path.split('/')[1] ?? '', UPLOADS, uploadId)
    if (!/^[0-9a-f]+$/.test(uploadId) || !existsSync(folder)) {
      ctx.status = 404
      ctx.type = 'application/xml'
      ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>'
      return
    }
    await rm(folder, { recursive: true, force: true })
    ctx.status = 204
  }
}

/** Runs s3rver on 127.0.0.1:`port` (0: any) over `directory` with `bucket`, prints `{"port":N}`, exits with its parent. */
async function serve(directory: string, port: number, bucket: string): Promise<void> {
  // s3rver's continuation tokens use the cipher 'des', which Bun's crypto knows only as 'des-cbc' (the same cipher):
  // without this, every LIST with more keys than max-keys answers 500.
  const des = (name: string) => (name === 'des' ? 'des-cbc' : name)
  const { createCipheriv, createDecipheriv } = crypto
  Object.assign(crypto, {
    createCipheriv: (name: string, ...rest: [crypto.CipherKey, crypto.BinaryLike | null]) => createCipheriv(des(name), ...rest),
    createDecipheriv: (name: string, ...rest: [crypto.CipherKey, crypto.BinaryLike | null]) => createDecipheriv(des(name), ...rest),
  })
  // s3rver lists keys in the order readdir gives them, S3 in key order: pages (max-keys, continuation tokens) would
  // skip keys. Sorted here, before s3rver's store takes its own reference to walk().
  const [utilsModule, serverModule, objectModule] = ['s3rver/lib/utils.js', 's3rver', 's3rver/lib/models/object.js']
  const { default: utils } = await import(utilsModule)
  utils.walk = function* sortedWalk(dir: string, descend?: (path: string) => boolean): Generator<string> {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const path = `${dir}/${entry.name}`
      if (!entry.isDirectory()) yield path
      else if (!descend || descend(path)) yield* sortedWalk(path, descend)
    }
  }
  const [{ default: S3rver }, { default: S3Object }] = await Promise.all([import(serverModule), import(objectModule)])
  const server = new S3rver({ address: '127.0.0.1', port, directory, silent: true, configureBuckets: [{ name: bucket }] })
  makeAtomic(server.store, S3Object)
  // Koa composes its middleware list when it starts listening, so this one still goes before s3rver's router.
  server.middleware.unshift(abortMultipartUpload(directory))
  const address = (await server.run()) as { port: number }
  console.log(JSON.stringify({ port: address.port }))
  // The parent holds our stdin; when it goes (even by kill -9) the server goes too.
  process.stdin.on('data', () => {})
  process.stdin.on('end', () => process.exit(0))
}

if (import.meta.main && process.argv[2] === '--serve') {
  const [directory, port, bucket] = process.argv.slice(3)
  await serve(directory!, Number(port), bucket!)
}
