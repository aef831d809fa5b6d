/** Bytes served by docker-registry, read from its access log (combined log format, one line per request). */
import { openSync, readSync, closeSync, statSync } from 'node:fs';

export interface RegistryTraffic {
  /** Sum of response sizes of blob GETs (full and Range). */
  blobBytes: number;
  blobGets: number;
  rangeGets: number;
  manifestGets: number;
}

// ... "GET /v2/NAME/blobs/sha256:HEX HTTP/1.1" 200 12345 "referer" "agent"
const LINE = /"(GET|HEAD) (\/v2\/\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

/** Sum blob and manifest GETs in `text` (a slice of the access log). */
export function parseAccessLog(text: string): RegistryTraffic {
  const t: RegistryTraffic = { blobBytes: 0, blobGets: 0, rangeGets: 0, manifestGets: 0 };
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m || m[1] !== 'GET') continue;
    const path = m[2] ?? '';
    const bytes = m[4] === '-' ? 0 : Number(m[4]);
    if (path.includes('/blobs/sha256:')) {
      t.blobGets++;
      if (m[3] === '206') t.rangeGets++;
      t.blobBytes += bytes;
    } else if (path.includes('/manifests/')) t.manifestGets++;
  }
  return t;
}

/** A cursor on a growing log file: `since()` parses only what was appended after `mark()`. */
export class AccessLogCursor {
  readonly #path: string;
  #offset = 0;

  constructor(path: string) {
    this.#path = path;
  }

  mark(): void {
    this.#offset = statSync(this.#path).size;
  }

  since(): RegistryTraffic {
    return parseAccessLog(readAppended(this.#path, this.#offset));
  }
}

/** The text appended to `path` after byte `offset`. */
export function readAppended(path: string, offset: number): string {
  const size = statSync(path).size;
  const buf = Buffer.alloc(Math.max(0, size - offset));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, offset);
  } finally {
    closeSync(fd);
  }
  return buf.toString('utf8');
}

/** `12.3 MB` style. */
export function formatBytes(n: number): string {
  if (n < 1e3) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}
