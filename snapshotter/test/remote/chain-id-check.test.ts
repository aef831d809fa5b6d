import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { isKind, findClipError } from '../../src/errors/index.js';
import { checkChainId, parentChainIdOf } from '../../src/remote/chain-id-check.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const chain = (parent: string, diffId: string): string => `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
const [D1, D2, EVIL] = [d('1'), d('2'), d('e')];
const C2 = chain(D1, D2);

function mismatch(t: Test, f: () => void, why: string): void {
  try {
    f();
    t.fail(`accepted: ${why}`);
  } catch (err) {
    t.ok(isKind(err, 'failed_precondition') && findClipError(err)?.code === 'CLIP_CHAIN_ID_MISMATCH', `${why}: ${String(err)}`);
  }
}

t.test('parent names: plain chain IDs and containerd\'s namespaced backend names', async (t) => {
  t.equal(parentChainIdOf(''), '');
  t.equal(parentChainIdOf(D1), D1);
  t.equal(parentChainIdOf(`k8s.io/42/${D1}`), D1);
  t.equal(parentChainIdOf('k8s.io/42/some-key'), undefined);
  t.equal(parentChainIdOf('my-base'), undefined);
});

t.test('a layer whose diffID chains from its parent to the target passes', async (t) => {
  t.doesNotThrow(() => checkChainId({ chainId: D1, parentName: '', diffId: D1, labels: {} }), 'first layer: chain ID = diffID');
  t.doesNotThrow(() => checkChainId({ chainId: C2, parentName: D1, diffId: D2, labels: {} }));
  t.doesNotThrow(() => checkChainId({ chainId: C2, parentName: `default/7/${D1}`, diffId: D2, labels: {} }), 'parent committed by containerd');
  t.doesNotThrow(() => checkChainId({ chainId: C2, parentName: D1, diffId: D2, labels: { 'containerd.io/snapshot/diff-id': D2, 'containerd.io/snapshot/parent-chain-id': D1 } }), 'containerd 2.3 labels agree');
});

t.test('squatting: an index (or layer) whose diffID is not the one the chain ID was computed from', async (t) => {
  mismatch(t, () => checkChainId({ chainId: D1, parentName: '', diffId: EVIL, labels: {} }), 'first layer named by another diffID');
  mismatch(t, () => checkChainId({ chainId: C2, parentName: D1, diffId: EVIL, labels: {} }), 'upper layer');
  mismatch(t, () => checkChainId({ chainId: C2, parentName: D2, diffId: D2, labels: {} }), 'wrong parent');
  mismatch(t, () => checkChainId({ chainId: C2, parentName: 'base', diffId: D2, labels: {} }), 'parent that is no chain ID');
  mismatch(t, () => checkChainId({ chainId: C2, parentName: D1, diffId: D2, labels: { 'containerd.io/snapshot/diff-id': EVIL } }), 'diff-id label disagrees');
  mismatch(t, () => checkChainId({ chainId: C2, parentName: D1, diffId: D2, labels: { 'containerd.io/snapshot/parent-chain-id': D2 } }), 'parent-chain-id label disagrees');
});
