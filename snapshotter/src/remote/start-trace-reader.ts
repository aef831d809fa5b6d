/**
 * A mounted layer's reader that runs each read inside its image's start trace while that trace is
 * open (telemetry/start-traces.ts), so the first reads of a container appear in the same trace as
 * the Prepare RPCs that mounted its layers. Outside a start trace it adds one map lookup per read.
 */
import { context } from '@opentelemetry/api';
import type { LayerReader, LayerRef } from '../storage/index.js';
import type { StartTraces } from '../telemetry/index.js';

/** Forwards to `inner`, under the image's open start trace if any. */
export class StartTraceReader implements LayerReader {
  readonly #inner: LayerReader;
  readonly #starts: StartTraces;
  readonly #image: string;

  readonly readNow?: LayerReader['readNow'];
  readonly diskRange?: LayerReader['diskRange'];

  constructor(inner: LayerReader, starts: StartTraces, image: string) {
    this.#inner = inner;
    this.#starts = starts;
    this.#image = image;
    // The inner reader's fast paths only while no start trace is open: a traced read takes `read`.
    const readNow = inner.readNow?.bind(inner);
    if (readNow) this.readNow = (buf, bufOffset, length, offset) => (this.#tracing() ? 0 : readNow(buf, bufOffset, length, offset));
    const diskRange = inner.diskRange?.bind(inner);
    if (diskRange) this.diskRange = (offset, length) => (this.#tracing() ? undefined : diskRange(offset, length));
  }

  #tracing(): boolean {
    return this.#starts.openTrace(this.#image) !== undefined;
  }

  get layer(): LayerRef {
    return this.#inner.layer;
  }

  read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
    const t = this.#starts.openTrace(this.#image);
    if (!t) return this.#inner.read(buf, bufOffset, length, offset);
    return context.with(t.readContext(this.#inner.layer.diffId), () => this.#inner.read(buf, bufOffset, length, offset));
  }

  check(): Promise<void> {
    return this.#inner.check();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
