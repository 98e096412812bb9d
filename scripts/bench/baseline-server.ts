// A bare Bun.serve in a process of its own: the limit of this machine that a role is measured against.
// `constant <port>` answers a short text; `file <port> <path>` returns Bun.file (sendfile); `write <port> <dir>` Bun.writes the body.
const [mode, portText, path] = process.argv.slice(2)
const port = Number(portText)
if (!['constant', 'file', 'write'].includes(mode ?? '') || !Number.isInteger(port) || (mode !== 'constant' && !path)) {
  console.error('usage: baseline-server.ts constant|file|write <port> [path]')
  process.exit(2)
}

let written = 0
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
}

Bun.serve({ hostname: '127.0.0.1', port, fetch: handlers[mode!]!, maxRequestBodySize: 1024 * 1024 * 1024 })
process.on('SIGTERM', () => process.exit(0))
