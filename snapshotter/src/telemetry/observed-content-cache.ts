/**
 * A ContentCache seen by telemetry: publish outcomes counted, and failures the storage tier
 * swallows (a read outage treated as a miss, a failed publish logged) recorded on the span that
 * is active at the call — the tier's `clip.read.content_cache` or `clip.content_cache.publish`.
 */
import type { ContentCache } from '../contentcache/index.js';
import { ATTR_CLIP_PUBLISH_RESULT } from './attributes.js';
import { recordPublish } from './metrics.js';
import { activeRecordingSpan, recordSpanError } from './tracing.js';

/**
 * Wrap `cache`. A Proxy rather than a class: every other member, including ones added to the
 * interface later, passes through untouched.
 */
export function observeContentCache(cache: ContentCache): ContentCache {
  const readInto: ContentCache['readInto'] = (...args) => {
    const span = activeRecordingSpan();
    return cache.readInto(...args).catch((err: unknown) => {
      if (span) recordSpanError(span, err);
      throw err;
    });
  };
  const storeFile: ContentCache['storeFile'] = (...args) => {
    const span = activeRecordingSpan();
    return cache.storeFile(...args).then(
      (result) => {
        // Backends may say they skipped (already complete, another node publishing).
        const skipped = (result as { type?: unknown } | undefined)?.type === 'skipped';
        recordPublish(skipped ? 'skipped' : 'ok');
        span?.setAttribute(ATTR_CLIP_PUBLISH_RESULT, skipped ? 'skipped' : 'stored');
        return result;
      },
      (err: unknown) => {
        recordPublish('error');
        if (span) recordSpanError(span, err);
        throw err;
      },
    );
  };
  return new Proxy(cache, {
    get(target, prop) {
      if (prop === 'readInto') return readInto;
      if (prop === 'storeFile') return storeFile;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
