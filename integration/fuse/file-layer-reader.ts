/** A LayerReader over an uncompressed layer tar on local disk, with a switch to make reads fail. */
import { open, type FileHandle } from 'node:fs/promises';
import { unavailable } from '../../snapshotter/src/errors/index.js';
import type { LayerReader, LayerRef } from '../../snapshotter/src/storage/layer-reader.js';

export class FileLayerReader implements LayerReader {
  readonly layer: LayerRef;
  /** While true every read rejects, as a registry outage would. */
  failReads = false;
  reads = 0;
  readonly #fh: FileHandle;

  private constructor(fh: FileHandle, diffId: string, size: number) {
    this.#fh = fh;
    this.layer = { ref: 'file', digest: diffId, diffId, uncompressedSize: size };
  }

  /** Open a tar file as a layer. */
  static async open(path: string, diffId: string): Promise<FileLayerReader> {
    const fh = await open(path, 'r');
    return new FileLayerReader(fh, diffId, (await fh.stat()).size);
  }

  async read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
    this.reads++;
    if (this.failReads) throw unavailable('CLIP_LAYER_FETCH_FAILED', `layer ${this.layer.diffId} read at ${offset}`);
    const { bytesRead } = await this.#fh.read(buf, bufOffset, length, offset);
    return bytesRead;
  }

  async check(): Promise<void> {}

  async close(): Promise<void> {
    await this.#fh.close();
  }
}
