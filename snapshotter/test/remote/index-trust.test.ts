/**
 * Issue 12, deliver 3: which indexes the resolver calls trusted (built here, or checked against
 * the completed layer), and how a quarantined index stops being served from any source.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { buildIndex, encodeIndex } from '../../src/clip/index.js';
import { IndexResolver, indexCacheKey, indexDigestOf } from '../../src/remote/index.js';
import { QuarantineList } from '../../src/storage/index.js';
import { member, tar } from '../clip/tar-fixtures.js';
import { BlobOnlyCache } from '../storage/range-fixtures.js';
import { tempDir } from '../storage/fixtures.js';

const layerTar = tar(member({ name: 'tool', mode: 0o755 }, '#!/bin/sh\necho tool\n'));
const blob = gzipSync(layerTar);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const req = { imageRef: 'registry.test/app:1', layerDigest: digest };

async function fixture(t: Test, opts: { acceptForeign?: boolean } = {}) {
  const built = await buildIndex(Readable.from([blob]), { compressedDigest: digest });
  const trueBytes = encodeIndex(built);
  const forged = encodeIndex({ ...built, entries: built.entries.map((e) => (e.path === 'tool' ? { ...e, mode: 0o4755 } : e)) });
  const dir = await tempDir(t);
  const cc = new BlobOnlyCache();
  const quarantine = QuarantineList.memory();
  const calls = { artifact: 0, registry: 0 };
  const resolver = new IndexResolver({
    cacheDir: join(dir, 'indexes'),
    contentCache: cc,
    registry: { fetchBlob: async () => (calls.registry++, { stream: Readable.from([blob]), size: blob.length, offset: 0, length: blob.length }) },
    buildMissing: true,
    quarantine,
    ...(opts.acceptForeign !== undefined ? { acceptForeign: opts.acceptForeign } : {}),
    findArtifact: async () => (calls.artifact++, forged),
  });
  return { resolver, cc, quarantine, calls, trueBytes, forged, dir };
}

t.test('an artifact index is untrusted until checked; the mark survives in the local cache', async (t) => {
  const { resolver, forged } = await fixture(t);
  const r = await resolver.resolve(req);
  t.match(r, { source: 'artifact', trusted: false, digest: indexDigestOf(forged) });
  t.match(await resolver.local(digest), { source: 'local', trusted: false }, 'cached, still untrusted');
  await resolver.verified(digest, `${'0'.repeat(64)}`);
  t.match(await resolver.local(digest), { trusted: false }, 'a mark for other bytes does not count');
  await resolver.verified(digest, r.digest);
  t.match(await resolver.local(digest), { source: 'local', trusted: true }, 'checked: trusted from now on');
});

t.test('a quarantined index is discarded from the cache and skipped at every source; the replacement is trusted', async (t) => {
  const { resolver, cc, quarantine, calls, trueBytes, forged } = await fixture(t);
  await resolver.resolve(req);
  await cc.settled();
  t.ok(cc.blobs.get(indexCacheKey(digest))?.equals(forged), 'the artifact index went to the ContentCache');
  quarantine.add({ kind: 'index', key: indexDigestOf(forged), layer: digest, diffId: 'sha256:x', code: 'CLIP_INDEX_MISMATCH', reason: 'mode' });
  t.equal(await resolver.local(digest), undefined, 'the cached copy is not served');
  const rebuilt = await resolver.resolve(req);
  t.match(rebuilt, { source: 'built', trusted: true }, 'ContentCache and artifact copies skipped: built here');
  t.equal(calls.artifact, 2, 'the artifact was looked at and refused');
  t.ok(rebuilt.bytes.equals(trueBytes));

  // replace(): what the check does on a mismatch, with the index it rebuilt from the layer.
  const { resolver: r2, cc: cc2, trueBytes: true2, forged: forged2, dir } = await fixture(t);
  await r2.resolve(req);
  await r2.replace(digest, indexDigestOf(forged2), true2);
  t.match(await r2.local(digest), { trusted: true, digest: indexDigestOf(true2) }, 'the local cache holds the layer\'s own index, trusted');
  t.ok(cc2.blobs.get(indexCacheKey(digest))?.equals(true2), 'so does the ContentCache');
  t.ok(existsSync(join(dir, 'indexes')), 'cache dir kept');
});

t.test('accept_foreign_indexes = false: neither the ContentCache nor artifacts are consulted', async (t) => {
  const { resolver, cc, calls, forged, trueBytes } = await fixture(t, { acceptForeign: false });
  cc.blobs.set(indexCacheKey(digest), forged);
  const r = await resolver.resolve(req);
  t.match(r, { source: 'built', trusted: true });
  t.ok(r.bytes.equals(trueBytes));
  t.equal(calls.artifact, 0, 'no artifact lookup');
  t.equal(calls.registry, 1, 'the layer was downloaded to index it');
});
