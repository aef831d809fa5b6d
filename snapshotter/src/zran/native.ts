/**
 * Loader for the `clip_zran` N-API addon (snapshotter/native). The addon is optional: it is built
 * by `make zran` (node-gyp against the system zlib headers); without it gzip checkpoints are not
 * built and range reads are not used, so everything else keeps working.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A checkpoint as the addon reports it (window uncompressed, up to 32 KiB). */
export interface NativePoint {
  readonly in: number;
  readonly out: number;
  readonly bits: number;
  readonly window: Buffer;
}

/** The addon's functions. */
export interface ZranNative {
  readonly zlibVersion: string;
  indexerCreate(spanBytes: number): unknown;
  indexerPush(indexer: unknown, chunk: Buffer): { output: Buffer; points: NativePoint[] };
  indexerEnd(indexer: unknown): { in: number; out: number; complete: boolean };
  /** Inflate `outLen` bytes from a checkpoint, on the thread pool. */
  extract(input: Buffer, bits: number, window: Buffer, outLen: number): Promise<Buffer>;
}

const ADDON = join('snapshotter', 'native', 'build', 'Release', 'clip_zran.node');
let cached: ZranNative | null | undefined;

/** Candidate paths: `$CLIP_ZRAN_ADDON`, then the source tree's build dir seen from src/ or build/. */
function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const env = process.env['CLIP_ZRAN_ADDON'];
  return [
    ...(env ? [env] : []),
    resolve(here, '..', '..', '..', ADDON),
    resolve(here, '..', '..', '..', '..', ADDON),
  ];
}

/** The addon, or undefined when it has not been built (checkpoints are then skipped). */
export function loadZran(): ZranNative | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const require = createRequire(import.meta.url);
  cached = null;
  for (const path of candidates()) {
    if (!existsSync(path)) continue;
    cached = require(path) as ZranNative;
    break;
  }
  return cached ?? undefined;
}
