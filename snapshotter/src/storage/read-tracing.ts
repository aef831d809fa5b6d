/**
 * Telemetry for the read path's tiers: one `clip.read.<tier>` span per tier a traced read touches
 * (hit or miss), and per-tier metrics for every read a tier serves, traced or not.
 */
import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_CLIP_CACHE_HIT, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST, ATTR_CLIP_READ_BYTES, ATTR_CLIP_READ_LENGTH,
  ATTR_CLIP_READ_OFFSET, ATTR_CLIP_SOURCE, SPAN_READ_CONTENT_CACHE, SPAN_READ_DISK, SPAN_READ_REGISTRY,
  recordRead, recordReadError, tracingEnabled, withSpan,
} from '../telemetry/index.js';
import type { LayerRef, ReadSource } from './layer-reader.js';

const SPAN_OF: Record<ReadSource, string> = {
  disk: SPAN_READ_DISK,
  content_cache: SPAN_READ_CONTENT_CACHE,
  registry: SPAN_READ_REGISTRY,
};

/** The attributes every read and tier span carries. */
export function readSpanAttrs(ref: LayerRef, offset: number, len: number): Attributes {
  return {
    [ATTR_CLIP_LAYER_DIGEST]: ref.digest,
    [ATTR_CLIP_LAYER_DIFF_ID]: ref.diffId,
    [ATTR_CLIP_READ_OFFSET]: offset,
    [ATTR_CLIP_READ_LENGTH]: len,
  };
}

/**
 * The range tier, whose source is known only afterwards: spans already in the sparse file (disk),
 * decoded by another node (content_cache) or fetched by Range (registry). The span starts as
 * `clip.read.registry` and is renamed to the tier that served the read.
 */
export async function traceRangeTier(
  ref: LayerRef, offset: number, len: number, fn: () => Promise<{ n: number; source: ReadSource } | undefined>,
  served?: (source: ReadSource, n: number) => void,
): Promise<number | undefined> {
  const started = performance.now();
  const run = async (): Promise<{ n: number; source: ReadSource } | undefined> => {
    try {
      const r = await fn();
      if (r) recordRead(r.source, r.n, (performance.now() - started) / 1000);
      if (r) served?.(r.source, r.n);
      return r;
    } catch (err) {
      recordReadError('registry');
      throw err;
    }
  };
  if (!tracingEnabled()) return (await run())?.n;
  const attrs = { ...readSpanAttrs(ref, offset, len), [ATTR_CLIP_SOURCE]: 'registry', 'clip.range_read': true };
  return withSpan(SPAN_READ_REGISTRY, attrs, async (span) => {
    const r = await run();
    if (r && r.source !== 'registry') span.updateName(SPAN_OF[r.source]);
    span.setAttributes({ [ATTR_CLIP_SOURCE]: r?.source ?? 'registry', [ATTR_CLIP_CACHE_HIT]: r !== undefined, [ATTR_CLIP_READ_BYTES]: r?.n ?? 0 });
    return r?.n;
  });
}

/**
 * Run one tier of a read: `fn` resolves to the bytes served or `undefined` for a miss. The tier's
 * span (when tracing) gets `clip.source`, hit/miss and bytes; a rejection marks it failed.
 */
export async function traceTier<T extends number | undefined>(
  source: ReadSource, ref: LayerRef, offset: number, len: number, fn: () => Promise<T>, extra: Attributes = {},
): Promise<T> {
  const started = performance.now();
  const run = async (): Promise<T> => {
    try {
      const n = await fn();
      if (n !== undefined) recordRead(source, n, (performance.now() - started) / 1000);
      return n;
    } catch (err) {
      recordReadError(source);
      throw err;
    }
  };
  if (!tracingEnabled()) return run();
  const attrs = { ...readSpanAttrs(ref, offset, len), [ATTR_CLIP_SOURCE]: source, ...extra };
  return withSpan(SPAN_OF[source], attrs, async (span) => {
    const n = await run();
    span.setAttributes({ [ATTR_CLIP_CACHE_HIT]: n !== undefined, [ATTR_CLIP_READ_BYTES]: n ?? 0 });
    return n;
  });
}
