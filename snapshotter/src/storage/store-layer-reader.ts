/** The handle `LayerStore.open` returns: forwards to the store and releases its pin once. */
import { failedPrecondition } from '../errors/index.js';
import type { DiskRange, LayerReader, LayerRef } from './layer-reader.js';

/** What a reader needs from its store; keeps the reader free of the store's internals. */
export interface LayerReaderHost {
  readLayer(hex: string, buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number>;
  readLayerNow(hex: string, buf: Buffer, bufOffset: number, length: number, offset: number): number;
  diskRangeOf(hex: string, offset: number, length: number): DiskRange | undefined;
  checkLayer(ref: LayerRef): Promise<void>;
  releaseLayer(hex: string): void;
}

/** One open handle on a layer; every mount holds one, so the layer stays pinned while mounted. */
export class StoreLayerReader implements LayerReader {
  readonly layer: LayerRef;
  readonly #hex: string;
  readonly #host: LayerReaderHost;
  #closed = false;

  constructor(layer: LayerRef, hex: string, host: LayerReaderHost) {
    this.layer = layer;
    this.#hex = hex;
    this.#host = host;
  }

  read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
    if (this.#closed) return Promise.reject(closedError(this.layer));
    return this.#host.readLayer(this.#hex, buf, bufOffset, length, offset);
  }

  readNow(buf: Buffer, bufOffset: number, length: number, offset: number): number {
    return this.#closed ? 0 : this.#host.readLayerNow(this.#hex, buf, bufOffset, length, offset);
  }

  diskRange(offset: number, length: number): DiskRange | undefined {
    return this.#closed ? undefined : this.#host.diskRangeOf(this.#hex, offset, length);
  }

  check(): Promise<void> {
    return this.#host.checkLayer(this.layer);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#host.releaseLayer(this.#hex);
  }
}

const closedError = (layer: LayerRef) =>
  failedPrecondition('CLIP_STORAGE_NOT_STARTED', `layer ${layer.diffId}: reader is closed`);
