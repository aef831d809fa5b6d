/**
 * Checking an index this node did not build (a registry artifact, another node's via the
 * ContentCache, this node's cache of either) against its layer, once the layer is complete and
 * verified against its diffID on disk: the layer is parsed again and must give the same entries —
 * paths, types, modes, owners, times, sizes, data offsets, links, device numbers, xattrs. Until
 * then the index is as trusted as push access to the image's repository (README "Security model").
 * The span tables (gzip checkpoints, zstd frames) are not compared: what they map is checked by the
 * diffID of the completed layer itself.
 */
import { Readable } from 'node:stream';
import { buildIndex, decodeIndex, encodeIndex, type ClipIndex, type ClipIndexReader, type ClipLimits } from '../clip/index.js';
import { dataCorrupt, type ClipError } from '../errors/index.js';

/** Positional reads of the complete, diffID-verified layer (`LayerStore.openComplete`). */
export type CompleteLayerRead = (buf: Buffer, bufOffset: number, length: number, offset: number) => Promise<number>;

/** The verdict of one check: the index rebuilt from the layer, and the mismatch if there is one. */
export interface IndexCheckResult {
  /** Rebuilt from the verified layer: what the layer really holds (no span tables). */
  actual: ClipIndex;
  /** `CLIP_INDEX_MISMATCH` naming the first difference; undefined when the index describes the layer. */
  mismatch: ClipError | undefined;
}

const CHUNK = 4 * 1024 * 1024;

/** The first difference between two indexes' entries, or undefined when they describe the same tree. */
export function indexDifference(claimed: ClipIndexReader, actual: ClipIndexReader): string | undefined {
  if (claimed.meta.diffId !== actual.meta.diffId) return `diffID ${claimed.meta.diffId} vs ${actual.meta.diffId}`;
  if (claimed.meta.uncompressedSize !== actual.meta.uncompressedSize) return `size ${claimed.meta.uncompressedSize} vs ${actual.meta.uncompressedSize}`;
  if (claimed.entryCount !== actual.entryCount) return `${claimed.entryCount} entries vs ${actual.entryCount}`;
  for (let i = 0; i < claimed.entryCount; i++) {
    const a = fieldsOf(claimed, i);
    const b = fieldsOf(actual, i);
    const differ = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
    if (differ.length > 0) {
      const shown = differ.slice(0, 4).map((k) => `${k} ${clip(a[k])} vs ${clip(b[k])}`).join(', ');
      return `entry ${i} (${clip(b['path'] ?? a['path'])}): ${shown}`;
    }
  }
  return undefined;
}

/** Every field of an entry, xattrs included, each as a comparable JSON string. */
function fieldsOf(r: ClipIndexReader, i: number): Record<string, string> {
  const e = r.entryAt(i);
  const xattrs = r.xattrs(i).map((x) => `${x.name}=${x.value.toString('hex')}`);
  return Object.fromEntries(Object.entries({ ...e, xattrs }).map(([k, v]) => [k, JSON.stringify(v)]));
}

/** Index values are untrusted: at most 80 characters of one goes into an error message. */
const clip = (v: string | undefined): string => (v === undefined ? '-' : v.length > 80 ? `${v.slice(0, 77)}...` : v);

/**
 * Rebuild the index of a complete layer of `size` bytes through `read` and compare it with
 * `claimed`. Rejects only when the layer cannot be read or parsed (no verdict). `verifiedDiffId`:
 * the diffID the layer's bytes were verified against when it completed (the layer ref's); the
 * bytes are then not hashed again, and the claimed index's diffID is compared with it.
 */
export async function checkIndexAgainstLayer(
  claimed: ClipIndexReader, read: CompleteLayerRead, size: number, limits?: Partial<ClipLimits>, verifiedDiffId?: string,
): Promise<IndexCheckResult> {
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let off = 0; off < size; off += CHUNK) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - off));
      let done = 0;
      while (done < buf.length) {
        const n = await read(buf, done, buf.length - done, off + done);
        if (n <= 0) break;
        done += n;
      }
      yield done === buf.length ? buf : buf.subarray(0, done);
      if (done < buf.length) return;
    }
  }
  const built = await buildIndex(Readable.from(chunks()), { ...(limits ? { limits } : {}), verifiedDiffId });
  // The blob's digest and compression are not in the tar: carried over so both name the same layer.
  const actual: ClipIndex = { meta: { ...built.meta, compressedDigest: claimed.meta.compressedDigest, compression: claimed.meta.compression }, entries: built.entries };
  const diff = indexDifference(claimed, decodeIndex(encodeIndex(actual), limits));
  return {
    actual,
    mismatch: diff === undefined
      ? undefined
      : dataCorrupt('CLIP_INDEX_MISMATCH', `index of layer ${claimed.meta.compressedDigest} does not describe the layer: ${diff}`),
  };
}
