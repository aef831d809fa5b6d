/** Fake layer readers for the tests of the reader wrappers: with and without the fast paths. */
import type { LayerReader } from '../../src/storage/index.js';

/** The layer every fake reader serves. */
export const layer = { ref: 'r/x:1', digest: 'sha256:aa', diffId: 'sha256:bb', uncompressedSize: 1 << 20 };

/** A reader whose page-cache and splice paths answer (10 bytes; fd 7 at the asked offset). */
export function fastPathReader(): LayerReader {
  return {
    layer,
    read: async () => 10,
    readNow: () => 10,
    diskRange: (offset) => ({ fd: 7, position: offset, served: () => {} }),
    check: async () => {},
    close: async () => {},
  };
}

/** A reader with neither fast path. */
export function plainReader(): LayerReader {
  return { layer, read: async () => 0, check: async () => {}, close: async () => {} };
}
