import { invalidArgument } from '../errors/index.js';
import { MAX_LABEL_BYTES } from './types.js';

/** Reject labels containerd itself would reject (key + value over 4096 bytes, empty key). */
export function validateLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === '') throw invalidArgument('CLIP_LABEL_EMPTY_KEY', 'label key must not be empty');
    const size = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > MAX_LABEL_BYTES) {
      throw invalidArgument(
        'CLIP_LABEL_TOO_LARGE',
        `label key and value of "${k.slice(0, 64)}" is ${size} bytes, greater than maximum size (${MAX_LABEL_BYTES} bytes)`,
      );
    }
  }
}

/** Drop empty values: an empty label means "no label", as in containerd. */
export function withoutEmpty(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ''));
}
