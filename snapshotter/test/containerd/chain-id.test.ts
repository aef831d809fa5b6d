import t from 'tap';
import { createHash } from 'node:crypto';
import { chainId, chainIds } from '../../src/containerd/index.js';
import { isKind } from '../../src/errors/index.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;

t.test('the first chain id is the first diff id', async (t) => {
  t.same(chainIds([d('a')]), [d('a')]);
  t.equal(chainId([d('a')]), d('a'));
});

t.test('later chain ids hash "<parent chain> <diff id>"', async (t) => {
  const c1 = sha(`${d('a')} ${d('b')}`);
  const c2 = sha(`${c1} ${d('c')}`);
  t.same(chainIds([d('a'), d('b'), d('c')]), [d('a'), c1, c2]);
  t.equal(chainId([d('a'), d('b'), d('c')]), c2);
});

t.test('order matters', async (t) => {
  t.not(chainId([d('a'), d('b')]), chainId([d('b'), d('a')]));
});

t.test('empty stack and malformed diff ids', async (t) => {
  t.same(chainIds([]), []);
  t.equal(chainId([]), undefined);
  t.ok(isKind(t.throws(() => chainIds(['sha256:xyz'])), 'invalid_argument'));
  t.throws(() => chainIds([d('a'), 'md5:abc']));
});
