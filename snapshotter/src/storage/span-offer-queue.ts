/**
 * Span offers to the ContentCache kept off the reads a container start waits for. Publishing a
 * decoded span (HMAC signing, LZ4, the Redis write) runs on the daemon's one JS thread; done the
 * moment the span is decoded, it competes with the very reads that wait on the next spans. Offers
 * are queued instead and published, a few at a time, once on-demand fetching has paused for `idleMs`.
 * Reads served from spans already on disk count too (`touch`): a container that reads what it has
 * (the import's CPU-bound tail, a bulk read behind readahead) is still waiting on the same thread.
 *
 * Bounds: an offer older than `maxDelayMs`, or a queue longer than `maxQueued`, is published
 * whatever the reads do (an offer is never deferred forever); the queue holds at most
 * `maxHeldBytes` of span bytes — beyond that an offer keeps only how to re-read its span from the
 * sparse file, verified against its sha256 again before it is published (`reload`). An offer whose
 * span is gone by then (layer closed, completed, evicted) is dropped and counted. `close` (shutdown)
 * publishes what is queued without waiting for idle, for at most `closeFlushMs`, and drops the rest.
 *
 * Drops and failures are logged once per batch (whenever the pump pauses or drains), one line per
 * layer with a count: a layer that completes with thousands of spans queued drops all of them in
 * a burst, and a line per span would flood the log.
 */
import { messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { systemClock, type Clock } from '../util/clock.js';
import type { ReadActivity } from './read-activity.js';

/** One verified span to publish. */
export interface SpanOffer {
  /** The blob's name in the ContentCache (logs). */
  key: string;
  /** What the span belongs to (its layer's diffID): drops and failures are logged per group. */
  group?: string;
  /** The span's verified bytes, while the queue may hold them. */
  data: Buffer | undefined;
  /** The span again from disk, checked against its sha256; undefined when it is gone or differs. */
  reload: () => Promise<Buffer | undefined>;
  /** Publish verified bytes; resolves when done, never rejects. */
  publish: (data: Buffer) => Promise<void>;
}

export interface SpanOfferQueueOptions {
  /** Offers wait until no on-demand fetch has run, and no read was served from disk, for this long; default 100 ms. */
  idleMs?: number;
  /** An offer is published at the latest this long after it was queued; default 30 s. */
  maxDelayMs?: number;
  /** Span bytes the queue holds; offers beyond it re-read their span at publish time. Default 32 MiB. */
  maxHeldBytes?: number;
  /** Offers queued beyond this are published at once; default 65536. */
  maxQueued?: number;
  /** Publications in flight at once (each is a Redis round trip); default 4. */
  concurrency?: number;
  /** How long `close` keeps publishing what is queued; default 2 s (a FUSE server hand-over waits for it). */
  closeFlushMs?: number;
  /**
   * The process's FUSE requests (`read-activity.ts`): offers also wait while any container reads
   * anything — a complete or extracted layer's reads never reach `touch`. The queue's own bounds apply.
   */
  activity?: Pick<ReadActivity, 'reading'> | undefined;
  clock?: Clock;
  log?: Logger;
}

/** Counters (tests, logs). */
export interface SpanOfferStats {
  queued: number;
  published: number;
  /** Published from a re-read of the sparse file (the queue held no bytes for them). */
  reloaded: number;
  /** Published before the reads paused (deadline or queue length). */
  forced: number;
  /** Dropped: the span was gone or no longer verified at publish time, or the queue closed. */
  dropped: number;
}

interface Queued {
  offer: SpanOffer;
  at: number;
}

/** Drops or failures of one group since the last log line. */
interface Tally {
  count: number;
  /** The first offer's key and error (a sample; the others are alike or counted). */
  key: string;
  err?: string;
}

/** A FIFO of span offers published while on-demand reads pause; see the module comment. */
export class SpanOfferQueue {
  readonly stats: SpanOfferStats = { queued: 0, published: 0, reloaded: 0, forced: 0, dropped: 0 };
  readonly #idleMs: number;
  readonly #maxDelayMs: number;
  readonly #maxHeld: number;
  readonly #maxQueued: number;
  readonly #closeFlushMs: number;
  readonly #concurrency: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #activity: Pick<ReadActivity, 'reading'> | undefined;
  readonly #stop = new AbortController();
  #items: Queued[] = [];
  #head = 0;
  #held = 0;
  #active = 0;
  #lastActive = Number.NEGATIVE_INFINITY;
  #pumping: Promise<void> | undefined;
  #closed = false;
  /** While closing: publish without waiting, until then. */
  #flushUntil = Number.POSITIVE_INFINITY;
  /** Drops (span gone) and failures (publish threw) not yet logged, by group. */
  readonly #gone = new Map<string, Tally>();
  readonly #failed = new Map<string, Tally>();

  constructor(o: SpanOfferQueueOptions = {}) {
    this.#idleMs = Math.max(0, o.idleMs ?? 100);
    this.#maxDelayMs = Math.max(0, o.maxDelayMs ?? 30_000);
    this.#maxHeld = Math.max(0, o.maxHeldBytes ?? 32 * 1024 * 1024);
    this.#maxQueued = Math.max(1, o.maxQueued ?? 65_536);
    this.#closeFlushMs = Math.max(0, o.closeFlushMs ?? 2_000);
    this.#concurrency = Math.max(1, o.concurrency ?? 4);
    this.#clock = o.clock ?? systemClock;
    this.#log = o.log ?? silentLogger();
    this.#activity = o.activity;
  }

  /** Offers waiting. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** Span bytes the queue holds. */
  get heldBytes(): number {
    return this.#held;
  }

  /** An on-demand fetch begins: offers wait until it ends (plus `idleMs`). Call the result when it ends. */
  demand(): () => void {
    this.#active++;
    this.#lastActive = this.#clock.nowMs();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#active--;
      this.#lastActive = this.#clock.nowMs();
    };
  }

  /**
   * A read was served from spans already on disk: offers wait until `idleMs` after it too. Called
   * per FUSE read of a lazy layer, so it only notes the time.
   */
  touch(): void {
    this.#lastActive = this.#clock.nowMs();
  }

  /** Queue an offer of a verified span. */
  enqueue(offer: SpanOffer): void {
    if (this.#closed) return;
    let o = offer;
    if (o.data) {
      if (this.#held + o.data.length > this.#maxHeld) o = { ...o, data: undefined };
      else this.#held += o.data.length;
    }
    this.#items.push({ offer: o, at: this.#clock.nowMs() });
    this.stats.queued++;
    // Set before any await of the pump, and cleared by the pump in the same turn it finds the
    // queue empty: an offer queued meanwhile always has a pump to take it.
    if (!this.#pumping) this.#pumping = this.#pump();
  }

  /** Resolves once every queued offer is published or dropped (tests, status). */
  async settled(): Promise<void> {
    while (this.#pumping) await this.#pumping;
  }

  /**
   * Take no more offers; publish those queued without waiting for idle, for at most
   * `closeFlushMs`, then drop the rest (logged). The stats are logged once.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#flushUntil = this.#clock.nowMs() + this.#closeFlushMs;
    this.#stop.abort();
    await this.#pumping;
    this.#logTallies();
    const left = this.size;
    if (left > 0) {
      this.stats.dropped += left;
      this.#log.info({ offers: left, close_flush_ms: this.#closeFlushMs }, 'span offers to the ContentCache dropped at shutdown');
    }
    this.#items = [];
    this.#head = 0;
    this.#held = 0;
    if (this.stats.queued > 0) this.#log.info({ ...this.stats }, 'span offers to the ContentCache');
  }

  async #pump(): Promise<void> {
    const running = new Set<Promise<void>>();
    for (;;) {
      if (this.size === 0 || (this.#closed && this.#clock.nowMs() >= this.#flushUntil)) {
        if (running.size === 0) {
          this.#logTallies();
          this.#pumping = undefined;
          return;
        }
        await Promise.race(running);
        continue;
      }
      const wait = running.size >= this.#concurrency ? 0 : this.#waitMs();
      if (running.size >= this.#concurrency || (wait > 0 && running.size > 0)) {
        await Promise.race(running);
        continue;
      }
      if (wait > 0) {
        this.#logTallies();
        await this.#clock.sleep(wait, this.#stop.signal).catch(() => {});
        continue;
      }
      // #publish never rejects; the set forgets it once it settled.
      const p: Promise<void> = this.#publish(this.#take()).finally(() => running.delete(p));
      running.add(p);
    }
  }

  /** How long the oldest offer should still wait; 0 = publish it now. */
  #waitMs(): number {
    if (this.#closed) return 0;
    const oldest = this.#items[this.#head] as Queued;
    const now = this.#clock.nowMs();
    const deadline = oldest.at + this.#maxDelayMs - now;
    if (deadline <= 0 || this.size > this.#maxQueued) return 0;
    // While a fetch (or any FUSE request) runs, look again after idleMs: it may end at any time.
    const idle = this.#active > 0 || this.#activity?.reading === true ? Math.max(1, this.#idleMs) : this.#lastActive + this.#idleMs - now;
    if (idle <= 0) return 0;
    return Math.min(idle, deadline);
  }

  #take(): Queued {
    const q = this.#items[this.#head] as Queued;
    this.#items[this.#head] = undefined as unknown as Queued;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    if (q.offer.data) this.#held -= q.offer.data.length;
    return q;
  }

  async #publish(q: Queued): Promise<void> {
    const now = this.#clock.nowMs();
    if (!this.#closed && (this.#active > 0 || now - this.#lastActive < this.#idleMs || this.#activity?.reading === true)) this.stats.forced++;
    try {
      let data = q.offer.data;
      if (!data) {
        data = await q.offer.reload();
        if (!data) {
          this.stats.dropped++;
          tally(this.#gone, q.offer);
          return;
        }
        this.stats.reloaded++;
      }
      await q.offer.publish(data);
      this.stats.published++;
    } catch (err) {
      this.stats.dropped++;
      tally(this.#failed, q.offer, messageOf(err));
    }
  }

  /** One line per group for the drops and failures since the last call. */
  #logTallies(): void {
    for (const [group, t] of this.#gone) {
      this.#log.info({ group, offers: t.count, key: t.key }, 'span offers dropped: their spans are no longer on disk');
    }
    for (const [group, t] of this.#failed) {
      this.#log.info({ group, offers: t.count, key: t.key, err: t.err }, 'span offers failed');
    }
    this.#gone.clear();
    this.#failed.clear();
  }
}

function tally(m: Map<string, Tally>, offer: SpanOffer, err?: string): void {
  const group = offer.group ?? offer.key;
  const t = m.get(group);
  if (t) t.count++;
  else m.set(group, err === undefined ? { count: 1, key: offer.key } : { count: 1, key: offer.key, err });
}
