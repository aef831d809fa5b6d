/**
 * The cluster-wide cache of uncompressed layer bytes. Objects are keyed by a layer's diffID and
 * are either complete or absent to readers; range reads touch only the bytes asked for.
 */
export interface ContentCache {
  /** Backend name for logs, spans and metrics (`redis`, `none`). */
  readonly name: string;
  /**
   * Read `length` bytes at `offset` of object `key` into `buf` at `bufOffset`. Resolves to the
   * number of bytes read, or `undefined` on a miss (object absent, incomplete or found corrupt).
   * Throws an `unavailable` ClipError when the backend cannot be reached.
   */
  readInto(key: string, offset: number, length: number, buf: Buffer, bufOffset: number): Promise<number | undefined>;
  /** True when a complete object of exactly `size` bytes is stored under `key`. */
  has(key: string, size: number): Promise<boolean>;
  /**
   * Publish a local file (a verified, complete layer) under `key`. Skips when the object is
   * already complete or another node is publishing it. Backends may resolve to `void`.
   */
  storeFile(key: string, path: string, size: number, opts?: StoreOptions): Promise<StoreResult | void>;
  /** Small blobs such as clip indexes, stored whole. */
  getBlob(key: string): Promise<Buffer | undefined>;
  putBlob(key: string, data: Buffer): Promise<void>;
  /**
   * Connect now rather than at the first use (the daemon calls it at start, in the background): a
   * cold node's first Prepare then does not wait for the handshake. Rejects `unavailable` when the
   * backend cannot be reached; later uses try again as they would have.
   */
  connect?(): Promise<void>;
  close(): Promise<void>;
}

/** Options of one publish. */
export interface StoreOptions {
  /** Abort the upload; no manifest is written, so the object stays incomplete (a miss). */
  signal?: AbortSignal;
  /** Called after each chunk is stored with the bytes stored so far. */
  onProgress?: (bytesStored: number) => void;
  /** Each chunk waits for it before it is read, signed and compressed (background publishing yields to FUSE reads). */
  beforeChunk?: () => Promise<void>;
}

/** What a publish did. */
export type StoreResult =
  | { type: 'stored'; bytes: number; chunks: number; storedBytes: number }
  | { type: 'skipped'; reason: 'complete' | 'locked' | 'disabled' };

/** The `backend = "none"` cache: always a miss, stores nothing. Chosen explicitly, never by accident. */
export class NoContentCache implements ContentCache {
  readonly name = 'none';
  async readInto(): Promise<number | undefined> {
    return undefined;
  }
  async has(): Promise<boolean> {
    return false;
  }
  async storeFile(): Promise<StoreResult> {
    return { type: 'skipped', reason: 'disabled' };
  }
  async getBlob(): Promise<Buffer | undefined> {
    return undefined;
  }
  async putBlob(): Promise<void> {}
  async close(): Promise<void> {}
}
