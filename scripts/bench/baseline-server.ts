// A bare Bun.serve in a process of its own: the limit of this machine that a role is measured against.
// `constant <port>` answers a short text; `file <port> <path>` returns Bun.file (sendfile); `write <port> <dir>` Bun.writes the body.
// For hops-floor.ts: `store <port> <dir>` keeps images by id and area (Bun.write in, Bun.file out), nothing checked;
// `pass <port> <address>` hands a `POST /new` body unread to such a store and answers a new id, and a short text to anything else.
const [mode, portText, path] = process.argv.slice(2)
const port = Number(portText)
if (!['constant', 'file', 'write', 'store', 'pass'].includes(mode ?? '') || !Number.isInteger(port) || (mode !== 'constant' && !path)) {
  console.error('usage: baseline-server.ts constant|file|write|store|pass <port> [path|address]')
  process.exit(2)
}

let written = 0
let nextId = 0
const imagePath = (url: URL) => `${path}/${url.searchParams.get('state')}-${Number(url.searchParams.get('id'))}.png`
const handlers: Record<string, (request: Request) => Response | Promise<Response>> = {
  // The same kind of answer as kv's /get: a short text.
  constant: () => new Response('127.0.0.1:3001'),
  file: () => new Response(Bun.file(path!), { headers: { 'content-type': 'image/png' } }),
  // GET is the health check of the runner; 64 file names in turn keep the disk use bounded.
  write: async (request) => {
    if (request.method === 'GET') return new Response('ok')
    await Bun.write(`${path}/${written++ % 64}.png`, request)
    return new Response('success')
  },
  store: async (request) => {
    const url = new URL(request.url)
    if (url.pathname === '/sendImage') {
      await Bun.write(imagePath(url), request)
      return new Response('success')
    }
    return url.pathname === '/getImage' ? new Response(Bun.file(imagePath(url))) : new Response('ok')
  },
  pass: async (request) => {
    if (new URL(request.url).pathname !== '/new') return new Response('{"ok":true}')
    const id = nextId++
    const stored = await fetch(`http://${path}/sendImage?id=${id}&state=working`, {
      method: 'POST',
      body: request.body,
      headers: { 'content-length': request.headers.get('content-length') ?? '0' },
    })
    await stored.text()
    return new Response(String(id))
  },
}

Bun.serve({ hostname: '127.0.0.1', port, fetch: handlers[mode!]!, maxRequestBodySize: 1024 * 1024 * 1024 })
process.on('SIGTERM', () => process.exit(0))
