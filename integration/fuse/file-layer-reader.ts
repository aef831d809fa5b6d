/** A LayerReader over an uncompressed layer tar on local disk (page cache first, as the disk cache), with a switch to make reads fail. */
import { open, type FileHandle } from 'node:fs/promises';
import { unavailable } from '../../snapshotter/src/errors/index.js';
import type { DiskRange, LayerReader, LayerRef } from '../../snapshotter/src/storage/layer-reader.js';
import { readCachedNow } from '../../snapshotter/src/util/page-cache-read.js';

export class FileLayerReader implements LayerReader {
  readonly layer: LayerRef;
  /** While true every read rejects, as a registry outage would. */
  failReads = false;
  /** Calls of `read` (reads the page cache could not serve whole). */
  reads = 0;
  /** FUSE read requests: calls of `diskRange` (kernel driver) or else of `readNow`. */
  requests = 0;
  /** Bytes the FUSE driver spliced from the file (`diskRange` ranges it served). */
  splicedBytes = 0;
  #inDiskRange = false;
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

  diskRange(offset: number, length: number): DiskRange | undefined {
    this.requests++;
    if (this.failReads || offset + length > this.layer.uncompressedSize) return undefined;
    // A refused splice is followed by readNow for the same request: count it once.
    this.#inDiskRange = true;
    return { fd: this.#fh.fd, position: offset, served: (n) => void (this.splicedBytes += n) };
  }

  readNow(buf: Buffer, bufOffset: number, length: number, offset: number): number {
    if (!this.#inDiskRange) this.requests++;
    this.#inDiskRange = false;
    return this.failReads ? 0 : readCachedNow(this.#fh.fd, buf, bufOffset, length, offset);
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
