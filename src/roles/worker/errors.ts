// The worker's named errors: they decide whether a task is reported failed or retried (STYLE habit 8).

/** The image will never decode, or breaks a limit: report the task failed, do not retry it here. */
export class UnrecoverableImageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UnrecoverableImageError'
  }
}
