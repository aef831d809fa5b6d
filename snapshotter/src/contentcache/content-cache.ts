/**
 * The cluster-wide cache of uncompressed layer bytes. Objects are keyed by a layer's diffID and
 * are either complete or absent to readers; range reads touch only the bytes asked for.
 */
export interface ContentCache {
  /** Backend name for logs, spans and metrics (`redis`, `none`). */
  readonly name: string;
  /**
   * Read `length` bytes at `offset` of object `key` into `buf` at `bufOffset`. Resolves to the
   * number of bytes read, or `undefined` on a miss (object absent or incomplete). Throws an
   * `unavailable` ClipError when the backend cannot be reached.
   */
  readInto(key: string, offset: number, length: number, buf: Buffer, bufOffset: number): Promise<number | undefined>;
  /** True when a complete object of exactly `size` bytes is stored under `key`. */
  has(key: string, size: number): Promise<boolean>;
  /** Publish a local file (a verified, complete layer) under `key`. */
  storeFile(key: string, path: string, size: number): Promise<void>;
  /** Small blobs such as clip indexes, stored whole. */
  getBlob(key: string): Promise<Buffer | undefined>;
  putBlob(key: string, data: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** The `backend = "none"` cache: always a miss, stores nothing. Chosen explicitly, never by accident. */
export class NoContentCache implements ContentCache {
  readonly name = 'none';
  async readInto(): Promise<number | undefined> {
    return undefined;
  }
  async has(): Promise<boolean> {
    return false;
  }
  async storeFile(): Promise<void> {}
  async getBlob(): Promise<Buffer | undefined> {
    return undefined;
  }
  async putBlob(): Promise<void> {}
  async close(): Promise<void> {}
}
