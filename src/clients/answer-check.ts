// A peer's JSON answer, checked against the wire schema before anything reads it: a peer that answers nonsense is a
// 502 naming it, not a TypeError three calls later.
import type { Static, TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { DependencyUnavailable } from '../shared/errors.ts'

/** Reads and checks one kind of answer; compiled once, when the client module loads. */
export interface AnswerCheck<T> {
  /** The parsed answer; DependencyUnavailable (502) saying which peer answered `path` with what, when it does not fit. */
  read(peer: string, path: string, text: string): T
  /** `value`, parsed from `text`, when it fits; else as `read`. */
  check(peer: string, path: string, value: unknown, text: string): T
}

/** `what`: the answer's kind for the message, as in `a body that is not ${what}`. */
export function answerCheck<S extends TSchema>(schema: S, what: string): AnswerCheck<Static<S>> {
  const compiled = TypeCompiler.Compile(schema)
  const check = (peer: string, path: string, value: unknown, text: string): Static<S> => {
    if (compiled.Check(value)) return value
    const first = compiled.Errors(value).First()
    const where = first === undefined ? '' : `${first.path || 'the body'}: ${first.message}; `
    throw new DependencyUnavailable(`The ${peer} answered ${path} with a body that is not ${what}: ${where}${excerpt(text)}`, 502)
  }
  return {
    check,
    read(peer, path, text) {
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        throw new DependencyUnavailable(`The ${peer} answered ${path} with a body that is not JSON: ${excerpt(text)}`, 502)
      }
      return check(peer, path, value, text)
    },
  }
}

const excerpt = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}...` : text) || '(empty)'
