/**
 * The read path's contract with the FUSE layer: byte ranges of one layer's *uncompressed* tar,
 * wherever they come from (disk cache, ContentCache, registry).
 */

/** Which tier served a read. */
export type ReadSource = 'disk' | 'content_cache' | 'registry';

/** Everything needed to find a layer's bytes. */
export interface LayerRef {
  /** Image reference or repository the layer can be fetched from (`host/repo[:tag|@digest]`). */
  readonly ref: string;
  /** Digest of the blob in the registry (compressed). */
  readonly digest: string;
  /** Digest of the uncompressed tar: names the disk-cache file and the ContentCache object. */
  readonly diffId: string;
  readonly uncompressedSize: number;
  /**
   * The index's encoded gzip checkpoint table (`ClipIndexReader.gzipCheckpoints`), when it has one:
   * with `LayerStoreOptions.rangeReads` a miss then fetches only the spans it needs.
   */
  readonly gzipCheckpoints?: Buffer | undefined;
  /** The index's encoded zstd frame table (`ClipIndexReader.zstdFrames`): the same, for multi-frame zstd layers. */
  readonly zstdFrames?: Buffer | undefined;
}

/** A layer's bytes in a local file (LayerReader.diskRange). */
export interface DiskRange {
  readonly fd: number;
  readonly position: number;
  /** Account the bytes as a disk-tier read once they were delivered. */
  served(bytes: number): void;
}

/** Reads of one layer; shared by every mount of that layer. */
export interface LayerReader {
  readonly layer: LayerRef;
  /**
   * Read `length` bytes at `offset` of the uncompressed layer into `buf` at `bufOffset`; resolves
   * to the bytes read (less only at the end of the layer). Rejects with an `unavailable` ClipError
   * when no tier can serve it within bounded time.
   */
  read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number>;
  /**
   * The same read served at once from memory (the page cache of a cached layer), never waiting for
   * I/O: the bytes copied from `offset` on (0 … length; fewer when the rest is not in memory). The
   * caller reads the rest with `read`. Absent: every read takes `read`.
   */
  readNow?(buf: Buffer, bufOffset: number, length: number, offset: number): number;
  /**
   * Where `length` bytes at `offset` lie in a local file, when they all do (a layer complete on
   * disk): a FUSE driver may then move them to the kernel without copying them through this
   * process, and calls `served` once it did. Undefined: read them with `readNow`/`read`.
   */
  diskRange?(offset: number, length: number): DiskRange | undefined;
  /** Throws an `unavailable` ClipError when the layer cannot be read right now. */
  check(): Promise<void>;
  /** Release this handle; the layer stays cached. */
  close(): Promise<void>;
}
