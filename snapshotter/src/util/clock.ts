/**
 * Time as the daemon's timing code sees it: the current time and waiting. Production uses
 * `systemClock`; tests inject one they drive, so what they assert never depends on how fast the
 * machine is.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Reading the time and waiting; `sleep` rejects with the signal's reason when it aborts. */
export interface Clock {
  nowMs(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Wall-clock time and real timers. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  sleep: (ms, signal) => sleep(ms, undefined, signal ? { signal } : undefined),
};
