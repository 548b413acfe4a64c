/**
 * The reason an admission's AbortSignal carries when its deadline passes, so the code that gave
 * up can say "out of time" rather than "abandoned". Everything else that aborts an admission (the
 * API server closing the connection) is a plain abort.
 */
export class DeadlineExceededError extends Error {
  override readonly name = 'DeadlineExceededError';
  constructor(readonly deadlineMs: number) {
    super(`admission deadline of ${deadlineMs} ms exceeded`);
  }
}

export function isDeadlineExceeded(reason: unknown): reason is DeadlineExceededError {
  return reason instanceof DeadlineExceededError;
}
