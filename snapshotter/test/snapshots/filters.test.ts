import t from 'tap';
import { Kind, parseFilters, type SnapshotInfo } from '../../src/snapshots/index.js';

const info = (over: Partial<SnapshotInfo>): SnapshotInfo => ({
  name: 'n',
  parent: '',
  kind: Kind.Committed,
  createdNs: 0n,
  updatedNs: 0n,
  labels: {},
  ...over,
});

t.test('the remote-hit filter containerd sends', async (t) => {
  const f = parseFilters(['labels."containerd.io/snapshot.ref"==sha256:abc,parent=="sha256:p q"']);
  t.ok(f(info({ labels: { 'containerd.io/snapshot.ref': 'sha256:abc' }, parent: 'sha256:p q' })));
  t.notOk(f(info({ labels: { 'containerd.io/snapshot.ref': 'sha256:abc' }, parent: 'other' })));
  t.notOk(f(info({ labels: {}, parent: 'sha256:p q' })));
});

t.test('operators', async (t) => {
  t.ok(parseFilters(['name==n'])(info({})));
  t.ok(parseFilters(['name!=x'])(info({})));
  t.ok(parseFilters(['labels.a!=x'])(info({})), '!= matches an absent field, as in containerd');
  t.ok(parseFilters(['name~=^n$'])(info({})));
  t.ok(parseFilters(['name~=/^n$/'])(info({})));
  t.notOk(parseFilters(['name~=^x'])(info({})));
  t.ok(parseFilters(['labels.a'])(info({ labels: { a: '1' } })), 'bare path means present');
  t.notOk(parseFilters(['labels.a'])(info({})));
  t.ok(parseFilters(['kind==committed'])(info({})));
  t.ok(parseFilters(['kind==active'])(info({ kind: Kind.Active })));
  t.ok(parseFilters(['parent'])(info({ parent: 'p' })));
  t.notOk(parseFilters(['parent!=""'])(info({})), 'an absent field compares as "" (containerd Walk test)');
  t.ok(parseFilters(['parent!=""'])(info({ parent: 'p' })));
  t.ok(parseFilters(['parent'])(info({})), 'parent is always present, as in containerd');
});

t.test('separate filters are alternatives, commas conjunctions', async (t) => {
  const f = parseFilters(['name==a', 'name==b']);
  t.ok(f(info({ name: 'a' })));
  t.ok(f(info({ name: 'b' })));
  t.notOk(f(info({ name: 'c' })));
  t.ok(parseFilters([])(info({})));
  t.ok(parseFilters([''])(info({})));
  t.notOk(parseFilters(['name==n,kind==active'])(info({})));
});

for (const bad of ['name==', '==x', 'name=x', 'labels."unterminated==x', 'name~=(', 'name==a,', 'name==a b']) {
  t.test(`malformed: ${bad}`, async (t) => {
    t.throws(() => parseFilters([bad]), { kind: 'invalid_argument', code: 'CLIP_FILTER_SYNTAX' });
  });
}
