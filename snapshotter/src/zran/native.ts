/**
 * Loader for the `clip_zran` N-API addon (snapshotter/native). The addon is optional: it is built
 * by `make zran` (node-gyp against the system zlib headers); without it gzip checkpoints are not
 * built and range reads are not used, so everything else keeps working.
 */
import { loadNativeAddon } from '../util/native-addon.js';

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

let cached: ZranNative | null | undefined;

/** The addon, or undefined when it has not been built (checkpoints are then skipped). */
export function loadZran(): ZranNative | undefined {
  // null: looked for and not built (asked once per process).
  if (cached === undefined) cached = loadNativeAddon<ZranNative>('clip_zran', 'CLIP_ZRAN_ADDON', import.meta.url) ?? null;
  return cached ?? undefined;
}
