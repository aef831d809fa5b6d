/** Map items through an async function with at most `concurrency` in flight, results in input order. */
export async function boundedMap<T, R>(
  items: readonly T[], concurrency: number, fn: (item: T, index: number, signal: AbortSignal) => Promise<R>, signal?: AbortSignal,
): Promise<R[]> {
  // One failure stops the rest: their signal fires and no new item starts.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      stop.signal.throwIfAborted();
      const i = next++;
      results[i] = await fn(items[i] as T, i, stop.signal);
    }
  };
  try {
    const workers = Array.from({ length: Math.min(Math.max(1, concurrency), items.length) }, () =>
      worker().catch((err: unknown) => {
        stop.abort(err);
        throw err;
      }),
    );
    const settled = await Promise.allSettled(workers);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw stop.signal.reason ?? failed.reason;
    return results;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

