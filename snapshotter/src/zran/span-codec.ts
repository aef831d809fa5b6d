/**
 * What a sparse layer needs from a compressed layer's random-access table, whatever the codec:
 * where each span starts in the uncompressed layer and its sha256 (`SpanTable`), which compressed
 * bytes it needs, and how to decode them (`SpanCodec`). gzip spans resume from zran checkpoints;
 * zstd spans are runs of whole frames.
 */
import { dataCorrupt, messageOf } from '../errors/index.js';
import { spanCompressedRange, type GzipCheckpointTable, type PackedWindow } from './checkpoint-table.js';
import type { ZranNative } from './native.js';
import { unpackWindow } from './window-pack.js';

/** Span i covers [points[i].out, points[i+1].out) of the layer (the last ends at uncompressedSize). */
export interface SpanTable {
  readonly uncompressedSize: number;
  readonly points: ReadonlyArray<{ readonly out: number; readonly sha256: Buffer }>;
}

/** One codec's view of a layer's spans. */
export interface SpanCodec {
  readonly name: 'gzip' | 'zstd';
  readonly table: SpanTable;
  /** Compressed bytes [start, end) of the blob that span `i` decodes from. */
  compressedRange(i: number): { start: number; end: number };
  /** Decode span `i` from exactly its compressed range; throws data_corrupt. The caller checks the sha256. */
  decode(i: number, compressed: Buffer, ctx?: DecodeContext): Promise<Buffer>;
  /**
   * Get ready to decode spans `spans` that will have no `before` (gzip: fetch their windows from
   * the window pack), concurrently with the fetch of their compressed bytes.
   */
  prepare?(spans: readonly number[], signal: AbortSignal): Promise<void>;
}

/** What a decode may use besides the span's own bytes. */
export interface DecodeContext {
  /** Verified uncompressed bytes ending where the span starts (the previous span's tail). */
  before?: Buffer | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Windows `prepare` wants that lie at most this far apart in the pack are fetched in one request
 * (with the windows between them, unused): 16 windows of ≈ 16 KiB.
 */
export const WINDOW_MERGE_GAP_BYTES = 256 * 1024;

/** Fetches bytes [start, end) of a blob (here: a gzip window pack). */
export type PackFetcher = (start: number, end: number, signal: AbortSignal) => Promise<Buffer>;

/** Uncompressed end of span `i`. */
export function spanEnd(t: SpanTable, i: number): number {
  return t.points[i + 1]?.out ?? t.uncompressedSize;
}

/** Index of the span containing uncompressed offset `off` (binary search). */
export function spanAt(t: SpanTable, off: number): number {
  let lo = 0;
  let hi = t.points.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((t.points[mid] as { out: number }).out <= off) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * gzip spans: inflated by the addon from their checkpoint (bit offset + 32 KiB window). The
 * window is inline in version-1 tables; with a window pack (version 2) it is the previous span's
 * tail when that is at hand, else fetched from the pack with `fetchPack` (one small Range request).
 */
export function gzipSpanCodec(table: GzipCheckpointTable, z: ZranNative, fetchPack?: PackFetcher): SpanCodec {
  const fetched = new Map<number, Promise<Buffer>>();
  const packedOf = (i: number): PackedWindow => {
    const w = table.points[i]?.packed;
    if (!w) throw dataCorrupt('CLIP_ZRAN_TABLE_CORRUPT', `gzip checkpoint ${i} has no window`);
    if (!fetchPack) throw dataCorrupt('CLIP_ZRAN_WINDOW_UNAVAILABLE', `gzip checkpoint ${i}: its window is in a pack and no pack source was given`);
    return w;
  };
  /**
   * The windows of `spans` (ascending, none fetched yet) with one Range request into the pack for
   * their whole extent; each window is checked as it is unpacked.
   */
  const fetchGroup = (spans: readonly number[], signal: AbortSignal): void => {
    const ws = spans.map(packedOf);
    const from = (ws[0] as PackedWindow).offset;
    const bytes = (fetchPack as PackFetcher)(from, (ws[ws.length - 1] as PackedWindow).offset + (ws[ws.length - 1] as PackedWindow).length, signal);
    spans.forEach((i, k) => {
      const w = ws[k] as PackedWindow;
      const p = bytes.then((b) => unpackWindow(b.subarray(w.offset - from, w.offset - from + w.length), w));
      fetched.set(i, p);
      // A failed fetch is retried by the next decode; a good one is dropped once its span decodes.
      p.catch(() => fetched.get(i) === p && fetched.delete(i));
    });
  };
  const fromPack = (i: number, signal: AbortSignal): Promise<Buffer> => {
    if (!fetched.has(i)) fetchGroup([i], signal);
    return fetched.get(i) as Promise<Buffer>;
  };
  const windowOf = async (i: number, ctx: DecodeContext | undefined): Promise<Buffer> => {
    const p = table.points[i];
    if (!p) throw new RangeError(`no span ${i}`);
    if (p.window) return p.window;
    const need = p.packed?.windowLen ?? 0;
    if (need === 0) return Buffer.alloc(0);
    if (ctx?.before && ctx.before.length >= need) return ctx.before.subarray(ctx.before.length - need);
    return fromPack(i, ctx?.signal ?? new AbortController().signal);
  };
  return {
    name: 'gzip',
    table,
    compressedRange: (i) => spanCompressedRange(table, i),
    async prepare(spans, signal) {
      const need = [...new Set(spans)].filter((i) => (table.points[i]?.packed?.windowLen ?? 0) > 0).sort((a, b) => a - b);
      // Windows close together in the pack come in one request: a request costs the registry far
      // more than the few windows between them (docker-registry on loopback: ≈ 7 ms each).
      let group: number[] = [];
      const flush = (): void => {
        if (group.length > 0) fetchGroup(group, signal);
        group = [];
      };
      for (const i of need) {
        if (fetched.has(i)) continue;
        const prev = group[group.length - 1];
        if (prev !== undefined && packedOf(i).offset - (packedOf(prev).offset + packedOf(prev).length) > WINDOW_MERGE_GAP_BYTES) flush();
        group.push(i);
      }
      flush();
      await Promise.all(need.map((i) => fetched.get(i)));
    },
    async decode(i, compressed, ctx) {
      const p = table.points[i];
      if (!p) throw new RangeError(`no span ${i}`);
      const window = await windowOf(i, ctx);
      fetched.delete(i);
      try {
        return await z.extract(compressed, p.bits, window, spanEnd(table, i) - p.out);
      } catch (err) {
        throw dataCorrupt('CLIP_ZRAN_INFLATE', `gzip span ${i} (uncompressed ${p.out}) does not inflate: ${messageOf(err)}`, err);
      }
    },
  };
}
