import t from 'tap';
import { IdMapping, OVERFLOW_ID, idMappingFromLabels, parseIdRanges, toHost } from '../../src/snapshots/id-mapping.js';

const U = 'containerd.io/snapshot/uidmapping';
const G = 'containerd.io/snapshot/gidmapping';

t.test('parses containerd\'s "containerID:hostID:size[,…]" and translates', async (t) => {
  const m = idMappingFromLabels({ [U]: '0:100000:1000,1000:5000:10', [G]: '0:200000:65536' })!;
  t.same(m.uids, [
    { containerId: 0, hostId: 100000, size: 1000 },
    { containerId: 1000, hostId: 5000, size: 10 },
  ]);
  t.equal(m.uid(0), 100000);
  t.equal(m.uid(999), 100999, 'last id of the first range');
  t.equal(m.uid(1000), 5000, 'second range');
  t.equal(m.uid(1009), 5009);
  t.equal(m.gid(65535), 265535);
  t.same(m.root(), { uid: 100000, gid: 200000 });
});

t.test('an unmapped id becomes the host id of nobody, or the overflow id when nobody is unmapped too', async (t) => {
  const m = idMappingFromLabels({ [U]: '0:100000:65536', [G]: '0:200000:1000' })!;
  t.equal(m.uid(70000), 100000 + OVERFLOW_ID, 'uid 70000 is outside the range; nobody (65534) is inside');
  t.equal(m.gid(5000), OVERFLOW_ID, 'gid nobody is not mapped either');
});

t.test('one label alone leaves the other id kind as is (containerd: a nil map is identity)', async (t) => {
  const m = idMappingFromLabels({ [U]: '0:100000:65536' })!;
  t.equal(m.uid(5), 100005);
  t.equal(m.gid(5), 5);
  t.equal(toHost(7, []), 7);
});

t.test('no labels, or empty ones: no mapping', async (t) => {
  t.equal(idMappingFromLabels({}), undefined);
  t.equal(idMappingFromLabels({ [U]: '', [G]: '' }), undefined);
});

t.test('the key names the mapping, not the label spelling order of unrelated labels', async (t) => {
  const a = idMappingFromLabels({ [U]: '0:100000:65536', [G]: '0:100000:65536' })!;
  const b = idMappingFromLabels({ [G]: '0:100000:65536', [U]: '0:100000:65536', other: 'x' })!;
  const c = idMappingFromLabels({ [U]: '0:300000:65536', [G]: '0:300000:65536' })!;
  t.equal(a.key, b.key);
  t.not(a.key, c.key);
  t.match(a.key, /^[0-9a-f]{16}$/);
  t.equal(new IdMapping(a.uids, a.gids).key, a.key);
});

t.test('malformed values are a typed invalid argument', async (t) => {
  const bad = [
    '0:100000',
    '0:100000:65536,',
    'a:1:2',
    '-1:0:1',
    '0:4294967295:1',
    '4294967295:0:1',
    '0:0:0',
    '1:4294967290:10',
    ' 0:1:2',
    '0:1:2:3',
    Array.from({ length: 341 }, (_, i) => `${i}:${i}:1`).join(','),
  ];
  for (const v of bad) {
    t.throws(() => parseIdRanges(v, U), { kind: 'invalid_argument', code: 'CLIP_IDMAP_INVALID' }, v.slice(0, 30));
  }
  t.same(parseIdRanges('0:4294967294:1', U), [{ containerId: 0, hostId: 4294967294, size: 1 }], 'the largest valid id');
});

t.test('container root must be mapped, as containerd requires', async (t) => {
  t.throws(() => idMappingFromLabels({ [U]: '1:100000:65536', [G]: '0:100000:65536' }), { code: 'CLIP_IDMAP_NO_ROOT' });
  t.throws(() => idMappingFromLabels({ [U]: '0:100000:65536', [G]: '5:100000:65536' }), { code: 'CLIP_IDMAP_NO_ROOT' });
});
