/**
 * Records which byte ranges of a layer are read during a window that opens at the first read,
 * by wrapping the mount's LayerReader. After the window the wrapper only forwards.
 */
import type { LayerReader, LayerRef } from '../storage/index.js';
import type { ByteRange } from '../storage/index.js';
import { MAX_PROFILE_RANGES, boundRanges, mergeRanges } from './start-profile.js';

/** Called once with what was read when the window closes (or the reader is closed first). */
export type RecordingDone = (ranges: ByteRange[]) => void;

/** Runs `fn` once after `ms` unless the returned cancel is called first; tests inject one. */
export type ScheduleWindowEnd = (fn: () => void, ms: number) => () => void;

const timerWindowEnd: ScheduleWindowEnd = (fn, ms) => {
  const timer = setTimeout(fn, ms).unref();
  return () => clearTimeout(timer);
};

/** A LayerReader that remembers what it served during its first `windowMs` of reads. */
export class RecordingLayerReader implements LayerReader {
  readonly layer: LayerRef;
  readonly #inner: LayerReader;
  readonly #windowMs: number;
  readonly #done: RecordingDone;
  readonly #schedule: ScheduleWindowEnd;
  #ranges: ByteRange[] | undefined = [];
  #cancelWindow: (() => void) | undefined;

  readonly readNow?: LayerReader['readNow'];
  readonly diskRange?: LayerReader['diskRange'];

  constructor(inner: LayerReader, windowMs: number, done: RecordingDone, schedule: ScheduleWindowEnd = timerWindowEnd) {
    this.layer = inner.layer;
    this.#inner = inner;
    this.#windowMs = windowMs;
    this.#done = done;
    this.#schedule = schedule;
    // The inner reader's fast paths (page cache, splice) are reads too: recorded the same way.
    const readNow = inner.readNow?.bind(inner);
    if (readNow) {
      this.readNow = (buf, bufOffset, length, offset) => {
        const n = readNow(buf, bufOffset, length, offset);
        if (n > 0) this.#note(offset, n);
        return n;
      };
    }
    const diskRange = inner.diskRange?.bind(inner);
    if (diskRange) {
      this.diskRange = (offset, length) => {
        const r = diskRange(offset, length);
        if (r) this.#note(offset, length);
        return r;
      };
    }
  }

  // Not async: on the FUSE read path, after the window this is one call and no extra promise.
  read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
    this.#note(offset, length);
    return this.#inner.read(buf, bufOffset, length, offset);
  }

  #note(offset: number, length: number): void {
    const ranges = this.#ranges;
    if (ranges === undefined) return;
    this.#cancelWindow ??= this.#schedule(() => this.#finish(), this.#windowMs);
    ranges.push([offset, offset + length]);
    // FUSE reads arrive in ≤ 128 KiB pieces: merge often so a long sequential read stays one range.
    if (ranges.length >= 4 * MAX_PROFILE_RANGES) this.#ranges = mergeRanges(ranges);
  }

  check(): Promise<void> {
    return this.#inner.check();
  }

  async close(): Promise<void> {
    this.#finish();
    await this.#inner.close();
  }

  #finish(): void {
    const ranges = this.#ranges;
    if (ranges === undefined) return;
    this.#ranges = undefined;
    this.#cancelWindow?.();
    const size = this.layer.uncompressedSize;
    const clipped = ranges.map(([s, e]): ByteRange => [s, Math.min(e, size)]);
    if (clipped.length > 0) this.#done(boundRanges(clipped));
  }
}
