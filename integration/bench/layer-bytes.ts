/** Registry bytes of an image's layer blobs only (not configs, manifests or index artifacts), from the access log. */
import { statSync } from 'node:fs';
import { readAppended } from '../harness/registry-bytes.js';

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
    let bytes = 0;
    for (const line of readAppended(this.#path, this.#offset).split('\n')) {
      const m = LINE.exec(line);
      if (m && this.#digests.has(m[1]!) && m[2] !== '-') bytes += Number(m[2]);
    }
    return bytes;
  }
}
