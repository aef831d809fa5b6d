/**
 * Publishing verified layers to the ContentCache in the background (after a download, or when a
 * finished layer is adopted), traced as a root span linked to the read that triggered it so a
 * read's trace does not wait for, or include, the upload.
 */
import type { SpanContext } from '@opentelemetry/api';
import {
  ATTR_CLIP_CONTENT_CACHE_BACKEND, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST, ATTR_CLIP_LAYER_SIZE, SPAN_CONTENT_CACHE_PUBLISH,
  tracingEnabled, withSpan,
} from '../telemetry/index.js';
import type { ContentCacheTier } from './content-cache-tier.js';
import type { LayerRef } from './layer-reader.js';

/** Publishes through the ContentCache tier. */
export class LayerPublisher {
  readonly #cc: ContentCacheTier;
  readonly #beforeChunk: (() => Promise<void>) | undefined;

  /** `beforeChunk`: each chunk waits for it (the publish yields to FUSE reads, `read-activity.ts`). */
  constructor(cc: ContentCacheTier, beforeChunk?: () => Promise<void>) {
    this.#cc = cc;
    this.#beforeChunk = beforeChunk;
  }

  /** Start publishing `path`; resolves when done (never rejects), or undefined with no cache. */
  publish(ref: LayerRef, path: string, size: number, trigger: SpanContext | undefined): Promise<void> | undefined {
    const run = () => this.#cc.publish(ref, path, size, this.#beforeChunk ? { beforeChunk: this.#beforeChunk } : undefined);
    const backend = this.#cc.cache.name;
    if (!tracingEnabled() || backend === 'none') return run();
    const attrs = {
      [ATTR_CLIP_LAYER_DIGEST]: ref.digest, [ATTR_CLIP_LAYER_DIFF_ID]: ref.diffId, [ATTR_CLIP_LAYER_SIZE]: size,
      [ATTR_CLIP_CONTENT_CACHE_BACKEND]: backend,
    };
    return withSpan(SPAN_CONTENT_CACHE_PUBLISH, attrs, async () => run(), { root: true, links: trigger ? [{ context: trigger }] : [] });
  }
}
