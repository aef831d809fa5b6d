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

t.test('an unpack without a parent: overlay over the empty dir', async (t) => {
  t.same(buildMounts({ id: 7, kind: Kind.Active, parentIds: [], unpackWithoutParent: true }, { ...o, emptyDir: '/r/empty' }), [
    { type: 'overlay', source: 'overlay', options: ['index=off', 'workdir=/r/snapshots/7/work', 'upperdir=/r/snapshots/7/fs', 'lowerdir=/r/empty'] },
  ]);
  t.equal(buildMounts({ id: 7, kind: Kind.Active, parentIds: [4], unpackWithoutParent: true }, { ...o, emptyDir: '/r/empty' })[0]?.options.at(-1), 'lowerdir=/r/snapshots/4/fs', 'with a parent: as always');
});

t.test('lowerPath replaces where parents are seen', async (t) => {
  const lowerPath = (id: number) => `/r/snapshots/${id}/idmap/k`;
  t.same(buildMounts({ id: 9, kind: Kind.Active, parentIds: [4, 2] }, { ...o, lowerPath })[0]?.options.at(-1), 'lowerdir=/r/snapshots/4/idmap/k:/r/snapshots/2/idmap/k');
  t.same(buildMounts({ id: 9, kind: Kind.View, parentIds: [4] }, { ...o, lowerPath }), [{ type: 'bind', source: '/r/snapshots/4/idmap/k', options: ['ro', 'rbind'] }]);
  t.same(buildMounts({ id: 9, kind: Kind.Active, parentIds: [] }, { ...o, lowerPath })[0]?.source, '/r/snapshots/9/fs', 'its own dir is never translated');
});
