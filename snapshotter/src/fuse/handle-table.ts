/**
 * Open file and directory handles of one mount. A handle remembers the entry's data range so
 * `read` never goes back to the index.
 */

/** What an open handle refers to. */
export interface Handle {
  readonly path: string;
  readonly kind: 'file' | 'dir';
  /** Offset of the file's bytes in the layer tar (0 for directories and data-less files). */
  readonly dataOffset: number;
  readonly size: number;
}

// fuse-native passes fh as a uint32 and treats 0 as "no handle".
const MAX_FD = 0x7fff_ffff;

/** Handle numbers → handles; numbers are reused only after wrapping around. */
export class HandleTable {
  #handles = new Map<number, Handle>();
  #next = 1;

  /** Number of handles currently open. */
  get size(): number {
    return this.#handles.size;
  }

  /** Register a handle and return its number. */
  open(handle: Handle): number {
    let fd = this.#next;
    while (this.#handles.has(fd)) fd = fd >= MAX_FD ? 1 : fd + 1;
    this.#next = fd >= MAX_FD ? 1 : fd + 1;
    this.#handles.set(fd, handle);
    return fd;
  }

  /** The handle with this number, if open. */
  get(fd: number): Handle | undefined {
    return this.#handles.get(fd);
  }

  /** Forget a handle; false when it was not open. */
  release(fd: number): boolean {
    return this.#handles.delete(fd);
  }

  /** Forget every handle (after unmount). */
  clear(): void {
    this.#handles.clear();
  }
}
