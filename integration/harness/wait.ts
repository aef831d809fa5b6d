/** Polling helpers with deadlines, so a broken service fails a test instead of hanging it. */
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Thrown by a probe to stop waiting at once (e.g. the awaited process has exited). */
export class WaitAborted extends Error {}

/** Poll `probe` until it returns true; throw `what` with the last error after `timeoutMs`. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      if (err instanceof WaitAborted) throw err;
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** `promise`, or a rejection naming `what` once `timeoutMs` passes first (a deadline, not a measurement). */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when something accepts connections on the unix socket at `path`. */
export function socketAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}
