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

/** How `waitQuiet` polls: what it reads, when two readings count as quiet, and its bounds. */
export interface QuietPoll<T> {
  /** One reading (CPU seconds, a key count, …). */
  probe: () => T | Promise<T>;
  /** Whether the interval from `before` to `after` was quiet. */
  quiet: (before: T, after: T) => boolean;
  /** Pause between readings. */
  intervalMs: number;
  /** Consecutive quiet intervals that end the wait. */
  quietIntervals: number;
  /** Give up after this long, quiet or not (a measurement waits for a settled node, it does not fail on a busy one). */
  atMostMs: number;
}

/**
 * Read `probe` every `intervalMs` until `quietIntervals` intervals in a row were quiet, at most
 * `atMostMs`; returns the seconds waited and whether it ended quiet (false: the bound ran out).
 */
export async function waitQuiet<T>(p: QuietPoll<T>): Promise<{ waitedS: number; quiet: boolean }> {
  const started = Date.now();
  let last = await p.probe();
  let quiet = 0;
  while (quiet < p.quietIntervals && Date.now() - started < p.atMostMs) {
    await sleep(p.intervalMs);
    const now = await p.probe();
    quiet = p.quiet(last, now) ? quiet + 1 : 0;
    last = now;
  }
  return { waitedS: (Date.now() - started) / 1000, quiet: quiet >= p.quietIntervals };
}
