import { expect } from 'vitest';

/**
 * The error `promise` rejects with, checked to be a `type`; fails the test when it resolves
 * instead. One helper for every "this must fail, and with what" assertion.
 */
export async function rejectionOf<E extends Error>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  const resolved = Symbol('resolved');
  const error = await promise.then(
    () => resolved,
    (e: unknown) => e,
  );
  if (error === resolved) throw new Error(`expected a rejection with a ${type.name}, but the promise resolved`);
  expect(error).toBeInstanceOf(type);
  return error as E;
}
