/** Registry bytes of an image's layer blobs only (not configs, manifests or index artifacts), from the access log. */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

// ... "GET /v2/NAME/blobs/sha256:HEX[?query] HTTP/1.1" 200 12345 ...
const LINE = /"GET \/v2\/\S+\/blobs\/(sha256:[0-9a-f]{64})(?:\?\S*)? HTTP\/[\d.]+" \d{3} (\d+|-)/;

/** A cursor on the registry access log counting response bytes of GETs of `digests`. */
export class LayerBytesCursor {
  readonly #path: string;
  readonly #digests: Set<string>;
  #offset = 0;

  constructor(path: string, digests: string[]) {
    this.#path = path;
    this.#digests = new Set(digests);
  }

  mark(): void {
    this.#offset = statSync(this.#path).size;
  }

  /** Layer blob bytes served since `mark()`. */
  since(): number {
    const size = statSync(this.#path).size;
    const buf = Buffer.alloc(Math.max(0, size - this.#offset));
    const fd = openSync(this.#path, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.#offset);
    } finally {
      closeSync(fd);
    }
    let bytes = 0;
    for (const line of buf.toString('utf8').split('\n')) {
      const m = LINE.exec(line);
      if (m && this.#digests.has(m[1]!) && m[2] !== '-') bytes += Number(m[2]);
    }
    return bytes;
  }
}
