import t from 'tap';
import { buildMounts, Kind } from '../../src/snapshots/index.js';

const o = { snapshotsDir: '/r/snapshots', indexOff: true };

t.test('no parents: bind of its own fs', async (t) => {
  t.same(buildMounts({ id: 1, kind: Kind.Active, parentIds: [] }, o), [
    { type: 'bind', source: '/r/snapshots/1/fs', options: ['rw', 'rbind'] },
  ]);
  t.same(buildMounts({ id: 1, kind: Kind.View, parentIds: [] }, o)[0]?.options, ['ro', 'rbind']);
});

t.test('view of one parent: read-only bind of the parent', async (t) => {
  t.same(buildMounts({ id: 5, kind: Kind.View, parentIds: [3] }, o), [
    { type: 'bind', source: '/r/snapshots/3/fs', options: ['ro', 'rbind'] },
  ]);
});

t.test('view of several parents: overlay with lowerdirs only', async (t) => {
  t.same(buildMounts({ id: 5, kind: Kind.View, parentIds: [3, 2] }, o), [
    { type: 'overlay', source: 'overlay', options: ['index=off', 'lowerdir=/r/snapshots/3/fs:/r/snapshots/2/fs'] },
  ]);
});

t.test('active with parents: overlay, nearest parent first', async (t) => {
  t.same(buildMounts({ id: 9, kind: Kind.Active, parentIds: [4, 2, 1] }, { ...o, indexOff: false }), [
    {
      type: 'overlay',
      source: 'overlay',
      options: ['workdir=/r/snapshots/9/work', 'upperdir=/r/snapshots/9/fs', 'lowerdir=/r/snapshots/4/fs:/r/snapshots/2/fs:/r/snapshots/1/fs'],
    },
  ]);
});
