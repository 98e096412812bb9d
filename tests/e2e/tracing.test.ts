// OpenTelemetry across real role processes: one upload's trace from the edge through database, storage and the worker,
// collected by an OTLP/HTTP receiver started here.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { logLines, startCluster, waitFor } from '../helpers/cluster.ts'
import { startOtlpReceiver } from '../helpers/otlp-receiver.ts'
import { encodePng } from '../helpers/png.ts'
import { freePort, type RoleProcess, spawnRole, waitHealthy } from '../helpers/processes.ts'

const receiver = startOtlpReceiver()
// Batches leave every 100 ms, so that the test waits little for them.
const OTEL = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' }
let cluster: Awaited<ReturnType<typeof startCluster>>
let frontend: RoleProcess
const frontendAddress = `127.0.0.1:${freePort()}`
const PNG = encodePng(2, 2, 2, 8, [
  [
    [1, 2, 3],
    [4, 5, 6],
  ],
  [
    [7, 8, 9],
    [10, 11, 12],
  ],
])

beforeAll(async () => {
  cluster = await startCluster({ env: OTEL })
  await cluster.startWorker('traced-worker', {}, 1)
  frontend = await spawnRole('frontend', [cluster.address.kv, frontendAddress], { dataDir: cluster.dir, env: OTEL })
  await waitHealthy(frontendAddress, 20_000, frontend)
}, 60_000)
afterAll(async () => {
  await frontend?.kill9()
  await cluster?.close()
  receiver.stop()
})

const hex = (bytes: number) => [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('')

async function upload(headers: Record<string, string>): Promise<number> {
  const response = await fetch(`http://${cluster.address.master}/new`, { method: 'POST', body: PNG, headers: { 'content-type': 'image/png', ...headers } })
  expect(response.status).toBe(200)
  const id = Number(await response.text())
  await cluster.waitState(id, [2])
  return id
}

/**
 * Waits until the trace has spans of every one of `services`, a finished worker report and each of `named` (service and
 * span name), and gives them. Each process exports its spans on its own, so one role's may come after another's.
 */
function traceOf(traceId: string, services: readonly string[], named: ReadonlyArray<readonly [string, string]> = []) {
  const wanted = [['pixmill-worker', 'report'] as const, ...named]
  return waitFor(
    `spans of ${services.join(', ')} in trace ${traceId}`,
    () => {
      const spans = receiver.inTrace(traceId)
      const have = new Set(spans.map((span) => span.service))
      const complete = wanted.every(([service, name]) => spans.some((span) => span.service === service && span.name === name))
      return services.every((service) => have.has(service)) && complete ? spans : undefined
    },
    15_000,
    50,
  )
}

describe('e2e: tracing with OpenTelemetry', () => {
  test('an upload with a traceparent: master, database, storage and worker spans in its trace, parent to child', async () => {
    const traceId = hex(16)
    const callerSpan = hex(8)
    const id = await upload({ traceparent: `00-${traceId}-${callerSpan}-01` })
    const spans = await traceOf(
      traceId,
      ['pixmill-master', 'pixmill-database', 'pixmill-storage', 'pixmill-worker'],
      [
        ['pixmill-master', 'POST /new'],
        ['pixmill-database', 'POST /reserveTask'],
        ['pixmill-storage', 'POST /sendImage'],
        ['pixmill-database', 'POST /activateTask'],
        ['pixmill-worker', 'process task'],
        ['pixmill-storage', 'GET /getImage'],
        ['pixmill-master', 'POST /registerTaskFinished'],
      ],
    )
    const byId = new Map(spans.map((span) => [span.spanId, span]))
    const upload_ = spans.find((span) => span.service === 'pixmill-master' && span.name === 'POST /new')!
    expect(upload_).toMatchObject({ parentSpanId: callerSpan, kind: 2 })
    expect(upload_.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/new', 'http.response.status_code': 200 })
    // The master's calls: the database reserves the task, the storage takes the image, both children of the upload.
    for (const [service, name] of [
      ['pixmill-database', 'POST /reserveTask'],
      ['pixmill-storage', 'POST /sendImage'],
      ['pixmill-database', 'POST /activateTask'],
    ]) {
      expect(spans.find((span) => span.service === service && span.name === name)?.parentSpanId).toBe(upload_.spanId)
    }
    // The worker continues the trace stored with the task: its task span under the upload, a span per stage under it,
    // and the storage's and the master's answers to its calls under those.
    const task = spans.find((span) => span.service === 'pixmill-worker' && span.name === 'process task')!
    expect(task).toMatchObject({ parentSpanId: upload_.spanId, kind: 5 })
    expect(task.attributes['pixmill.task.id']).toBe(id)
    const stages = spans.filter((span) => span.service === 'pixmill-worker' && span.parentSpanId === task.spanId).map((span) => span.name)
    expect(stages.sort()).toEqual(['decode', 'encode', 'fetch', 'report', 'store'])
    const fetchStage = spans.find((span) => span.name === 'fetch' && span.parentSpanId === task.spanId)!
    expect(spans.find((span) => span.service === 'pixmill-storage' && span.name === 'GET /getImage')?.parentSpanId).toBe(fetchStage.spanId)
    const finished = spans.find((span) => span.service === 'pixmill-master' && span.name === 'POST /registerTaskFinished')!
    expect(byId.get(finished.parentSpanId!)?.name).toBe('report')
    // The log lines made while serving the upload name its trace.
    const lines = logLines(cluster.roles.master!.logFile).filter((line) => line.msg === 'upload accepted' && line.id === id)
    expect(lines[0]).toMatchObject({ trace_id: traceId, span_id: upload_.spanId })
  }, 30_000)

  test('through the frontend without a traceparent: the frontend starts the trace, and the worker joins it', async () => {
    const form = new FormData()
    form.append('uploadfile', new Blob([PNG], { type: 'image/png' }), 'a.png')
    const response = await fetch(`http://${frontendAddress}/submitTask`, { method: 'POST', body: form })
    const id = Number(await response.text())
    await cluster.waitState(id, [2])
    const root = await waitFor('the frontend’s root span', () =>
      receiver.spans.find(
        (span) =>
          span.service === 'pixmill-frontend' &&
          span.name === 'POST /submitTask' &&
          span.parentSpanId === undefined &&
          receiver.inTrace(span.traceId).some((s) => s.attributes['pixmill.task.id'] === id),
      ),
    )
    const spans = await traceOf(root.traceId, ['pixmill-frontend', 'pixmill-master', 'pixmill-database', 'pixmill-storage', 'pixmill-worker'])
    expect(spans.find((span) => span.service === 'pixmill-master' && span.name === 'POST /new')?.parentSpanId).toBeDefined()
  }, 30_000)

  test('a malformed traceparent is ignored: the upload works and starts a trace of its own', async () => {
    const before = receiver.spans.length
    const bad = `00-${'z'.repeat(32)}-${hex(8)}-01`
    const id = await upload({ traceparent: bad })
    const root = await waitFor('the master’s root span', () =>
      receiver.spans.slice(before).find((span) => span.service === 'pixmill-master' && span.name === 'POST /new' && span.parentSpanId === undefined),
    )
    const spans = await traceOf(root.traceId, ['pixmill-master', 'pixmill-worker'])
    expect(spans.find((span) => span.name === 'process task')?.attributes['pixmill.task.id']).toBe(id)
  }, 30_000)

  test('probes, metrics and workers’ claims make no spans', async () => {
    const isReadySpans = () => receiver.spans.filter((span) => span.service === 'pixmill-master' && span.name === 'GET /isReady').length
    const before = isReadySpans()
    await fetch(`http://${cluster.address.master}/health`)
    await fetch(`http://${cluster.address.master}/metrics`)
    // A request that does start a trace, after them: once its span is in, any span of theirs would be too (one
    // exporter per role, in the order the spans ended).
    await fetch(`http://${cluster.address.master}/isReady?id=0`)
    await waitFor('the marker request’s span', () => isReadySpans() > before)
    const names = new Set(receiver.spans.map((span) => span.name))
    for (const name of ['GET /health', 'GET /metrics', 'POST /getNewTask']) expect(names.has(name)).toBe(false)
  })
})
