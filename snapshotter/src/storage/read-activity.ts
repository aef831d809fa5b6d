/**
 * Containers' FUSE requests versus the background work of the same process. Every FUSE request
 * is answered on the one JS thread, and the machine may have only a couple of cores; a layer
 * completing in the background (the rest of its spans fetched and inflated, its sha256, its LZ4 +
 * HMAC publish to the ContentCache, its extraction to a plain directory) competes with the
 * requests of every container on the node — a second container started while the first one's
 * layers complete waited seconds behind work nobody was waiting for (issue 15).
 *
 * The FUSE drivers report each request (`begin`/`end`, or `touch` for one answered at once); the
 * background stages call `pass(stage)` between their batches, which waits while requests are in
 * flight or ended less than `idleMs` ago. A batch waits at most `maxDelayMs`; one forced through
 * by that bound opens the gate for `runMs` to every stage, so under reads that never pause the
 * background work still gets about runMs / (maxDelayMs + runMs) of the time and always finishes.
 */
import { systemClock, type Clock } from '../util/clock.js';
import { recordBackgroundWait } from '../telemetry/index.js';

/** The background stages that yield to reads (the `stage` label of `clip_background_waits_total`). */
export type BackgroundStage = 'fill' | 'hash' | 'publish' | 'extract';

export const BACKGROUND_STAGES: readonly BackgroundStage[] = ['fill', 'hash', 'publish', 'extract'];

/** How background work yields (`[reads] background_*`). */
export interface ReadActivityOptions {
  /** A batch waits until no FUSE request has run for this long; default 100 ms. */
  idleMs?: number;
  /** The longest one batch waits, whatever the reads do; default 1000 ms. 0 = background work never waits. */
  maxDelayMs?: number;
  /** After a batch was forced through by `maxDelayMs`, batches run without waiting for this long; default 100 ms. */
  runMs?: number;
  /** Whether range completion's fetch batches wait too (the range tier reads it); default true (see storage/README.md). */
  fillYields?: boolean;
  clock?: Clock;
}

/** Per stage: batches that waited, how long in all, and how many the bound let through before the reads paused. */
export interface StageWaits {
  waits: number;
  waitedMs: number;
  forced: number;
}

/** What the FUSE drivers tell the gate (a mount holds only this much of it). */
export interface ReadActivitySink {
  begin(): void;
  end(): void;
  touch(): void;
}

/** One per process: FUSE requests in, background batches held back while they run; see the module comment. */
export class ReadActivity implements ReadActivitySink {
  readonly stats: Record<BackgroundStage, StageWaits>;
  readonly #idleMs: number;
  readonly #maxDelayMs: number;
  readonly #runMs: number;
  readonly #clock: Clock;
  #inflight = 0;
  #last = Number.NEGATIVE_INFINITY;
  /** Until then every batch passes (a batch was forced through by the bound). */
  #openUntil = Number.NEGATIVE_INFINITY;

  constructor(o: ReadActivityOptions = {}) {
    this.#idleMs = Math.max(0, o.idleMs ?? 100);
    this.#maxDelayMs = Math.max(0, o.maxDelayMs ?? 1_000);
    this.#runMs = Math.max(0, o.runMs ?? 100);
    this.#clock = o.clock ?? systemClock;
    this.stats = Object.fromEntries(BACKGROUND_STAGES.map((s) => [s, { waits: 0, waitedMs: 0, forced: 0 }])) as Record<BackgroundStage, StageWaits>;
  }

  /** A FUSE request arrived; `end` when it is answered. Called per request: it only counts and notes the time. */
  begin(): void {
    this.#inflight++;
    this.#last = this.#clock.nowMs();
  }

  /** A request `begin` counted was answered. */
  end(): void {
    if (this.#inflight > 0) this.#inflight--;
    this.#last = this.#clock.nowMs();
  }

  /** A request answered at once (no `begin`/`end` around it). */
  touch(): void {
    this.#last = this.#clock.nowMs();
  }

  /** Whether a batch passing now would wait. */
  get reading(): boolean {
    return this.#busy(this.#clock.nowMs());
  }

  /**
   * Resolves when the next batch of background `stage` may run: at once while no request ran for
   * `idleMs`, else when they pause (or after `maxDelayMs`). Never rejects: on `signal` it
   * resolves, and the caller's own check of the signal ends its work.
   */
  async pass(stage: BackgroundStage, signal?: AbortSignal): Promise<void> {
    if (this.#maxDelayMs === 0) return;
    const started = this.#clock.nowMs();
    if (started < this.#openUntil || !this.#busy(started)) return;
    const deadline = started + this.#maxDelayMs;
    let forced = false;
    for (;;) {
      const now = this.#clock.nowMs();
      if (signal?.aborted || now < this.#openUntil || !this.#busy(now)) break;
      if (now >= deadline) {
        forced = true;
        this.#openUntil = now + this.#runMs;
        break;
      }
      // While a request runs, look again after idleMs: it may end at any time.
      const idle = this.#inflight > 0 ? Math.max(1, this.#idleMs) : this.#last + this.#idleMs - now;
      await this.#clock.sleep(Math.min(idle, deadline - now), signal).catch(() => {});
    }
    const waited = this.#clock.nowMs() - started;
    const s = this.stats[stage];
    s.waits++;
    s.waitedMs += waited;
    if (forced) s.forced++;
    recordBackgroundWait(stage, waited / 1000, forced);
  }

  #busy(now: number): boolean {
    return this.#inflight > 0 || now - this.#last < this.#idleMs;
  }
}
