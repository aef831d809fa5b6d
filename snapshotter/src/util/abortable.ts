/**
 * Waiting with a deadline: a promise raced against an AbortSignal. The work behind the promise is
 * not cancelled (it may be shared with other waiters); only this wait ends.
 */

/** Resolve or reject like `p`, or reject with the signal's reason as soon as it aborts. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** `signal` bounded by `ms` more milliseconds (a per-request deadline inside a longer job). */
export function withTimeout(signal: AbortSignal, ms: number): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)]);
}
