// Peeking at a request body and counting it against a limit, without buffering the whole.
import { describe, expect, test } from 'bun:test'
import { collectionPace, declaredLength, peekBody } from '../../src/shared/body-stream.ts'
import { PayloadTooLarge } from '../../src/shared/errors.ts'

function chunks(...parts: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(part)
      controller.close()
    },
  })
}

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill)

describe('peekBody', () => {
  test('gives the first bytes and then the whole body again, unchanged', async () => {
    const body = await peekBody(chunks(bytes(10, 1), bytes(30, 2), bytes(5, 3)), 33, 1000)
    expect(body.head.byteLength).toBeGreaterThanOrEqual(33)
    const whole = new Uint8Array(await new Response(body.stream).arrayBuffer())
    expect(whole.byteLength).toBe(45)
    expect([whole[0], whole[10], whole[44]]).toEqual([1, 2, 3])
    expect(body.failure()).toBeUndefined()
  })

  test('with collectEveryBytes, the body still comes through whole and in order', async () => {
    const parts = Array.from({ length: 8 }, (_, i) => bytes(1000, i + 1))
    const body = await peekBody(chunks(...parts), 33, 100_000, undefined, 2500)
    const whole = new Uint8Array(await new Response(body.stream).arrayBuffer())
    expect(whole.byteLength).toBe(8000)
    expect(Array.from({ length: 8 }, (_, i) => whole[i * 1000 + 999])).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  test('only a big body, or one of unknown length, is collected after as it goes', () => {
    expect(collectionPace(10 * 1024 * 1024)).toBeUndefined()
    expect(collectionPace(200 * 1024 * 1024)).toBe(2 * 1024 * 1024)
    expect(collectionPace(undefined)).toBe(2 * 1024 * 1024)
  })

  test('a body shorter than the peek is given whole', async () => {
    const body = await peekBody(chunks(bytes(4)), 33, 1000)
    expect(body.head.byteLength).toBe(4)
    expect((await new Response(body.stream).arrayBuffer()).byteLength).toBe(4)
  })

  test('a body that passes the limit while streaming ends in PayloadTooLarge and says so', async () => {
    const body = await peekBody(chunks(bytes(40), bytes(40), bytes(40)), 33, 100)
    await expect(new Response(body.stream).arrayBuffer()).rejects.toBeInstanceOf(PayloadTooLarge)
    expect(body.failure()).toBe('too-large')
  })

  test('a head already over the limit is refused at once', async () => {
    await expect(peekBody(chunks(bytes(200)), 33, 100)).rejects.toBeInstanceOf(PayloadTooLarge)
  })

  test('a client that goes away mid-body is told apart from the limit', async () => {
    let sent = 0
    const broken = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 2) controller.enqueue(bytes(40))
        else controller.error(new Error('connection reset'))
      },
    })
    const body = await peekBody(broken, 33, 1000)
    await expect(new Response(body.stream).arrayBuffer()).rejects.toThrow('connection reset')
    expect(body.failure()).toBe('source-failed')
  })
})

describe('declaredLength', () => {
  test('reads Content-Length, is undefined without one, refuses a malformed one', () => {
    expect(declaredLength(new Request('http://localhost/', { method: 'POST', body: 'abc', headers: { 'content-length': '3' } }))).toBe(3)
    expect(declaredLength(new Request('http://localhost/'))).toBeUndefined()
    expect(() => declaredLength(new Request('http://localhost/', { headers: { 'content-length': '1e3' } }))).toThrow('Content-Length')
  })
})
