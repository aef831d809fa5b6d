/**
 * Issue 12: a layer refused as quarantined when it is re-mounted (a restart reading its persisted
 * quarantine) stays refused with that reason: a Prepare over its mount point fails with
 * CLIP_LAYER_QUARANTINED, not a bare "not mounted".
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { buildIndex, decodeIndex, encodeIndex } from '../../src/clip/index.js';
import { dataCorrupt } from '../../src/errors/index.js';
import { silentLogger } from '../../src/log/index.js';
import { ClipRemoteLayers, LABEL_CLIP_IMAGE_REF, LABEL_CLIP_LAYER_DIGEST, indexDigestOf } from '../../src/remote/index.js';
import { LABEL_SNAPSHOT_REF } from '../../src/remote/layer-labels.js';
import { member, tar } from '../clip/tar-fixtures.js';

t.test('a re-mount refused as quarantined: checks of that mount point say so until it is removed', async (t) => {
  const blob = gzipSync(tar(member({ name: 'f', mode: 0o644 }, 'x\n')));
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const bytes = encodeIndex(await buildIndex(Readable.from([blob]), { compressedDigest: digest }));
  const index = decodeIndex(bytes);
  const refusal = dataCorrupt('CLIP_LAYER_QUARANTINED', `layer ${digest} was quarantined at 2026-01-01T00:00:00Z: CLIP_LAYER_DIFF_ID_MISMATCH`);
  let opens = 0;
  const layers = new ClipRemoteLayers({
    store: { open: () => (opens++, (() => { throw refusal; })()) },
    indexes: {
      resolve: async () => { throw new Error('no network on restore'); },
      local: async () => ({ index, bytes, source: 'local', digest: indexDigestOf(bytes), trusted: true }),
    },
    defaultNamespace: 'default',
  });
  // A base layer: its chain ID is its diffID.
  const labels = { [LABEL_SNAPSHOT_REF]: index.meta.diffId, [LABEL_CLIP_IMAGE_REF]: 'registry.test/app@sha256:' + '0'.repeat(64), [LABEL_CLIP_LAYER_DIGEST]: digest };
  const ctx = { key: index.meta.diffId, log: silentLogger(), restore: true, parent: '' };
  await t.rejects(layers.mount('/snapshots/7/fs', labels, ctx), { code: 'CLIP_LAYER_QUARANTINED' }, 'the re-mount is refused');
  t.equal(opens, 1, 'by the store');
  await t.rejects(layers.check('/snapshots/7/fs'), { code: 'CLIP_LAYER_QUARANTINED', message: /was quarantined at/ }, 'a Prepare over it gets the reason');
  await t.rejects(layers.check('/snapshots/8/fs'), { code: 'CLIP_LAYER_NOT_MOUNTED' }, 'other mount points are just not mounted');
  await layers.unmount('/snapshots/7/fs');
  await t.rejects(layers.check('/snapshots/7/fs'), { code: 'CLIP_LAYER_NOT_MOUNTED' }, 'forgotten once the snapshot is removed');
});
