/**
 * containerd 2.2+ parallel unpack ("rebase"): Prepare without a parent, the parent in Commit.
 * clip does not declare the capability; these show it stays correct if an operator declares it.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { checkChainId } from '../../src/remote/chain-id-check.js';
import { Kind, Snapshotter, type RemoteLayers, type RemoteMountContext } from '../../src/snapshots/index.js';

const REF = 'containerd.io/snapshot.ref';
const DIFF_ID = 'containerd.io/snapshot/diff-id';
const PARENT_CHAIN = 'containerd.io/snapshot/parent-chain-id';

const digest = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const chain = (parent: string, diffId: string): string => digest(`${parent} ${diffId}`);
const D0 = digest('layer 0');
const D1 = digest('layer 1');
const D2 = digest('layer 2');
const C0 = D0;
const C1 = chain(C0, D1);
const C2 = chain(C1, D2);

async function rejects(t: Test, p: Promise<unknown>, kind: string, code?: string): Promise<void> {
  const err = (await p.then(() => undefined, (e: unknown) => e)) as { kind?: string; code?: string } | undefined;
  t.equal(err?.kind, kind, `fails with ${kind}`);
  if (code) t.equal(err?.code, code);
}

/**
 * A remote that serves every layer whose diffID it is told (label `test.diff`, standing for the
 * index's), with remote/'s real chain-ID check against the parent the snapshotter passes.
 */
function fakeRemote(): RemoteLayers & { mounted: Set<string>; calls: number } {
  const r = {
    mounted: new Set<string>(),
    calls: 0,
    mount: async (mp: string, labels: Readonly<Record<string, string>>, ctx: RemoteMountContext) => {
      r.calls++;
      const d = labels['test.diff'];
      if (d === undefined) return undefined;
      checkChainId({ chainId: labels[REF]!, parentName: ctx.parent ?? '', diffId: d, labels });
      r.mounted.add(mp);
      return {};
    },
    check: async () => undefined,
    mountMapped: async () => undefined,
    unmount: async (mp: string) => void r.mounted.delete(mp),
  };
  return r;
}

async function open(t: Test, remote?: RemoteLayers): Promise<{ s: Snapshotter; fallbacks: string[] }> {
  const root = await mkdtemp(join(tmpdir(), 'clip-rebase-'));
  const fallbacks: string[] = [];
  const s = await Snapshotter.open({ root, ...(remote ? { remote } : {}), onFallback: (code) => fallbacks.push(code) });
  t.teardown(async () => {
    s.close();
    await rm(root, { recursive: true, force: true });
  });
  return { s, fallbacks };
}

t.test('Commit with a parent rebases a snapshot prepared without one', async (t) => {
  const { s } = await open(t);
  await s.prepare('a', '', {});
  await s.commit('A', 'a', {});
  await s.prepare('b', '', { [REF]: C1 });
  await s.commit('B', 'b', {}, 'A');
  t.equal((await s.stat('B')).parent, 'A', 'the parent given at Commit is recorded');
  await rejects(t, s.remove('A'), 'failed_precondition', 'CLIP_REMOVE_HAS_CHILDREN');
  const ms = await s.prepare('c', 'B', {});
  t.match(ms[0]?.options.find((o) => o.startsWith('lowerdir=')), new RegExp(`^lowerdir=${s.snapshotsDir}/2/fs:${s.snapshotsDir}/1/fs$`), 'containers see both layers');
  await s.remove('c');
  await s.remove('B');
  await s.remove('A');
});

t.test('Commit parent errors follow containerd', async (t) => {
  const { s } = await open(t);
  await s.prepare('a', '', {});
  await s.commit('A', 'a', {});
  await s.prepare('x', '', {});
  await rejects(t, s.commit('X', 'x', {}, 'missing'), 'not_found', 'CLIP_PARENT_NOT_FOUND');
  await s.prepare('act', '', {});
  await rejects(t, s.commit('X', 'x', {}, 'act'), 'failed_precondition', 'CLIP_COMMIT_PARENT_NOT_COMMITTED');
  t.equal((await s.stat('x')).kind, Kind.Active, 'a refused commit changes nothing');
  await s.prepare('y', 'A', {});
  await s.prepare('b', '', {});
  await s.commit('B', 'b', {});
  await rejects(t, s.commit('Y', 'y', {}, 'B'), 'invalid_argument', 'CLIP_COMMIT_PARENT_CHANGED');
  await s.commit('Y', 'y', {}, 'A');
  t.equal((await s.stat('Y')).parent, 'A', 'naming the parent it already has is fine');
});

t.test('an unpack Prepare without a parent is an overlay upper dir, so whiteouts survive the apply', async (t) => {
  const { s } = await open(t);
  const ms = await s.prepare('u', '', { [REF]: C1 });
  t.equal(ms.length, 1);
  t.equal(ms[0]?.type, 'overlay');
  t.ok(ms[0]?.options.includes(`upperdir=${s.snapshotsDir}/1/fs`));
  t.ok(ms[0]?.options.includes(`workdir=${s.snapshotsDir}/1/work`));
  t.ok(ms[0]?.options.includes(`lowerdir=${join(s.root, 'empty')}`));
  t.same(await s.mounts('u'), ms, 'Mounts answers the same');
  const plain = await s.prepare('p', '', {});
  t.equal(plain[0]?.type, 'bind', 'an ordinary Prepare without a parent stays a bind mount');
  const view = await s.view('v', '', { [REF]: C1 });
  t.equal(view[0]?.type, 'bind', 'views are never unpack targets');
});

t.test('lazy layers are committed on the parent their chain ID proves', async (t) => {
  const remote = fakeRemote();
  const { s, fallbacks } = await open(t, remote);
  await rejects(t, s.prepare('k0', '', { [REF]: C0, 'test.diff': D0 }), 'already_exists', 'CLIP_REMOTE_PREPARED');
  t.equal((await s.stat(C0)).parent, '');
  await rejects(t, s.prepare('k1', C0, { [REF]: C1, [PARENT_CHAIN]: C0, [DIFF_ID]: D1, 'test.diff': D1 }), 'already_exists', 'CLIP_REMOTE_PREPARED');
  t.equal((await s.stat(C1)).parent, C0);
  const ms = await s.prepare('ctr', C1, {});
  t.match(ms[0]?.options.at(-1), /^lowerdir=.*\/2\/fs:.*\/1\/fs$/, 'a container sees both layers');
  t.same(fallbacks, []);
});

t.test('a lazy layer whose parent is missing or wrong falls back to an ordinary snapshot', async (t) => {
  const remote = fakeRemote();
  const { s, fallbacks } = await open(t, remote);
  await rejects(t, s.prepare('k0', '', { [REF]: C0, 'test.diff': D0 }), 'already_exists');

  // containerd 2.2 parallel unpack: no parent, no labels naming it; the chain-ID check refuses it.
  const ms = await s.prepare('k1', '', { [REF]: C1, 'test.diff': D1 });
  t.same(fallbacks, ['CLIP_CHAIN_ID_MISMATCH']);
  t.equal((await s.stat('k1')).kind, Kind.Active, 'an active snapshot for containerd to apply into');
  t.equal(remote.mounted.size, 1, 'nothing lazily mounted for it');
  t.equal(ms[0]?.type, 'overlay', 'mounted as an overlay upper dir for the applier');
  await s.commit(C1, 'k1', {}, C0);
  t.equal((await s.stat(C1)).parent, C0, 'the parent arrives at Commit');

  // containerd 2.3+: the label names the parent the Prepare lacks, even one that is committed:
  // containerd looks for the target with no parent, so it must not be committed on one. Nothing is
  // even resolved.
  const calls = remote.calls;
  await s.prepare('k2', '', { [REF]: C2, [DIFF_ID]: D2, [PARENT_CHAIN]: C1, 'test.diff': D2 });
  t.equal(remote.calls, calls, 'nothing resolved or mounted');
  t.equal(fallbacks.at(-1), 'CLIP_LAZY_PARENT_MISSING');
  t.equal((await s.stat('k2')).parent, '');
  await s.commit(C2, 'k2', {}, C1);
  t.equal((await s.stat(C2)).parent, C1, 'the parent arrives at Commit');
  t.same((await s.list([])).filter((i) => i.kind === Kind.Committed && i.parent === '').map((i) => i.name), [C0], 'no parentless layer but the first');

  // Sequential, but the target name is not this layer on this parent.
  await s.prepare('k4', C0, { [REF]: digest('another chain'), 'test.diff': D2 });
  t.equal(fallbacks.at(-1), 'CLIP_CHAIN_ID_MISMATCH');
  t.equal(remote.mounted.size, 1, 'only the base layer stays mounted');
});
