import t from 'tap';
import { mkdtemp, readdir, rm, mkdir, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Snapshotter, Kind, mountsUnder, type RemoteLayers } from '../../src/snapshots/index.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { unavailable } from '../../src/errors/index.js';

import type { Test } from 'tap';

const execFileP = promisify(execFile);

/** Assert that a call fails with a ClipError of the given kind (and code). */
async function rejectsKind(t: Test, p: Promise<unknown>, kind: string, code?: string): Promise<void> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as { kind?: string; code?: string } | undefined;
  t.equal(err?.kind, kind, `fails with ${kind}`);
  if (code) t.equal(err?.code, code);
}

/** A fake FUSE server serving the mount points in `served`; `over` replaces any of its calls. */
function servingRemote(served: Set<string>, over: Partial<RemoteLayers> = {}): RemoteLayers {
  return {
    mount: async (mp) => {
      served.add(mp);
      return {};
    },
    check: async (mp) => {
      if (!served.has(mp)) throw unavailable('CLIP_LAYER_NOT_MOUNTED', `not mounted: ${mp}`);
    },
    mountMapped: async () => undefined,
    unmount: async (mp) => {
      served.delete(mp);
    },
    served: async () => [...served],
    ...over,
  };
}

async function open(t: Test, remote?: RemoteLayers, onFallback?: (code: string, r: string) => void): Promise<Snapshotter> {
  const root = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  const s = await Snapshotter.open({ root, ...(remote ? { remote } : {}), ...(onFallback ? { onFallback } : {}) });
  t.teardown(async () => {
    s.close();
    await rm(root, { recursive: true, force: true });
  });
  return s;
}

t.test('prepare, commit, stat, list, remove', async (t) => {
  const s = await open(t);
  await s.prepare('a', '', { l: 'v' });
  await rejectsKind(t, s.prepare('a', '', {}), 'already_exists');
  await writeFile(join(s.snapshotsDir, '1', 'fs', 'f'), 'x'.repeat(10000));
  const active = await s.usage('a');
  t.ok(active.size >= 10000 && active.inodes === 2, 'usage of an active snapshot is measured');
  await s.commit('A', 'a', { c: '1' });
  const info = await s.stat('A');
  t.equal(info.kind, Kind.Committed);
  t.same(info.labels, { c: '1' }, 'labels replaced at commit, not inherited');
  await rejectsKind(t, s.stat('a'), 'not_found');
  t.same(await s.usage('A'), active, 'committed usage recorded at commit');
  await s.view('v', 'A', {});
  t.equal((await s.stat('v')).parent, 'A');
  await rejectsKind(t, s.remove('A'), 'failed_precondition', 'CLIP_REMOVE_HAS_CHILDREN');
  t.equal((await s.list([])).length, 2);
  t.same((await s.list(['kind==view'])).map((i) => i.name), ['v']);
  await s.remove('v');
  await s.remove('A');
  t.same(await s.list([]), []);
  t.same(await readdir(s.snapshotsDir), [], 'directories removed with their snapshots');
});

t.test('error codes for bad requests', async (t) => {
  const s = await open(t);
  await rejectsKind(t, s.prepare('k', 'missing', {}), 'not_found', 'CLIP_PARENT_NOT_FOUND');
  await s.prepare('p', '', {});
  await rejectsKind(t, s.prepare('k', 'p', {}), 'invalid_argument', 'CLIP_PARENT_NOT_COMMITTED');
  await rejectsKind(t, s.commit('x', 'nokey', {}), 'not_found');
  await s.view('view', '', {});
  await rejectsKind(t, s.commit('x', 'view', {}), 'failed_precondition', 'CLIP_COMMIT_NOT_ACTIVE');
  await s.commit('P', 'p', {});
  await rejectsKind(t, s.mounts('P'), 'failed_precondition');
  await s.prepare('q', '', {});
  await rejectsKind(t, s.commit('P', 'q', {}), 'already_exists');
  await rejectsKind(t, s.prepare('big', '', { k: 'v'.repeat(4096) }), 'invalid_argument', 'CLIP_LABEL_TOO_LARGE');
  await rejectsKind(t, s.remove('nope'), 'not_found');
  await rejectsKind(t, s.usage('nope'), 'not_found');
  await rejectsKind(t, s.list(['name=']), 'invalid_argument');
  t.same((await s.list([])).map((i) => i.name).sort(), ['P', 'q', 'view'], 'failed calls changed nothing');
  t.notOk(await readdir(s.snapshotsDir).then((d) => d.includes('4')), 'no directory for the oversized-label prepare');
});

t.test('update follows containerd field-mask rules', async (t) => {
  const s = await open(t);
  await s.prepare('a', '', { keep: '1', drop: '2' });
  const before = await s.stat('a');
  const base = { ...before, labels: { keep: '1', added: '3' } };
  let after = await s.update({ ...base, labels: { added: '3' } }, ['labels.added', 'labels.drop']);
  t.same(after.labels, { keep: '1', added: '3' }, 'labels.K sets one, a missing K deletes it');
  t.ok(after.updatedNs > before.updatedNs && after.createdNs === before.createdNs);
  after = await s.update({ ...base, labels: { only: 'x' } }, []);
  t.same(after.labels, { only: 'x' }, 'an empty mask replaces all labels');
  after = await s.update({ ...base, labels: { z: 'z' } }, ['labels']);
  t.same(after.labels, { z: 'z' });
  await rejectsKind(t, s.update({ ...base }, ['name']), 'invalid_argument', 'CLIP_UPDATE_FIELD');
  await rejectsKind(t, s.update({ ...base, name: 'nope' }, []), 'not_found');
  await rejectsKind(t, s.update({ ...base, labels: { k: 'v'.repeat(5000) } }, []), 'invalid_argument');
  t.same((await s.stat('a')).labels, { z: 'z' }, 'rejected updates change nothing');
});

t.test('cleanup removes orphaned directories only', async (t) => {
  const s = await open(t);
  await s.prepare('a', '', {});
  await mkdir(join(s.snapshotsDir, '77', 'fs'), { recursive: true });
  await mkdir(join(s.snapshotsDir, 'junk'), { recursive: true });
  await s.cleanup();
  t.same(await readdir(s.snapshotsDir), ['1']);
});

t.test('cleanup running beside prepares never takes a new snapshot\'s directory', async (t) => {
  // containerd's GC sends Cleanup while other Prepares run (a flaky CI run lost a new snapshot's
  // fs/ this way). Orphans make the listing and each removal take several turns of the event loop.
  const s = await open(t);
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 3; i++) await mkdir(join(s.snapshotsDir, String(1000 + round * 3 + i), 'fs'), { recursive: true });
    const cleaning = s.cleanup();
    const keys: string[] = [];
    for (let i = 0; i < 4; i++) {
      keys.push(`r${round}-${i}`);
      await s.prepare(`r${round}-${i}`, '', {});
      await new Promise((r) => setImmediate(r));
    }
    await cleaning;
    for (const key of keys) {
      const [m] = await s.mounts(key);
      const upper = m!.options.find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length) ?? m!.source;
      t.ok((await stat(upper)).isDirectory(), `${key}: its directory survived the cleanup`);
    }
  }
  t.same((await readdir(s.snapshotsDir)).filter((n) => Number(n) >= 1000 || n.startsWith('.')), [], 'every orphan is gone');
});

t.test('remote prepare protocol: mount, commit under target, already exists', async (t) => {
  const mounted: string[] = [];
  const remote: RemoteLayers = {
    mount: async (mp, labels) => {
      if (labels['fail']) throw unavailable('CLIP_REGISTRY_UNAVAILABLE', 'registry down');
      if (!labels['lazy']) return undefined;
      mounted.push(mp);
      return { 'containerd.io/snapshot/clip.layer-digest': 'sha256:l' };
    },
    check: async () => undefined,
    mountMapped: async () => undefined,
    unmount: async (mp) => void mounted.splice(mounted.indexOf(mp), 1),
  };
  const fallbacks: string[] = [];
  const s = await open(t, remote, (code, r) => fallbacks.push(`${code}: ${r}`));
  const labels = { 'containerd.io/snapshot.ref': 'sha256:chain1', lazy: '1' };
  await rejectsKind(t, s.prepare('ns/1/extract-1 sha256:chain1', '', labels), 'already_exists', 'CLIP_REMOTE_PREPARED');
  const info = await s.stat('sha256:chain1');
  t.equal(info.kind, Kind.Committed);
  t.equal(info.labels['containerd.io/snapshot/remote'], 'remote snapshot');
  t.equal(info.labels['containerd.io/snapshot/clip.layer-digest'], 'sha256:l', 'labels for a restart recorded');
  t.equal(mounted.length, 1);
  t.same(
    (await s.list(['labels."containerd.io/snapshot.ref"==sha256:chain1'])).map((i) => i.name),
    ['sha256:chain1'],
    'containerd finds the remote snapshot with its List filter',
  );
  await rejectsKind(t, s.prepare('ns/1/extract-2 sha256:chain1', '', labels), 'already_exists', 'CLIP_TARGET_EXISTS');
  await rejectsKind(t, s.stat('ns/1/extract-1 sha256:chain1'), 'not_found');
  // Not a lazy candidate: an ordinary active snapshot, no fallback counted.
  const ms = await s.prepare('k2', 'sha256:chain1', { 'containerd.io/snapshot.ref': 'sha256:chain2' });
  t.equal(ms[0]?.type, 'overlay', 'an ordinary active snapshot on the remote parent');
  t.same(fallbacks, []);
  // A candidate that fails to mount falls back and is counted.
  await s.prepare('k3', 'sha256:chain1', { 'containerd.io/snapshot.ref': 'sha256:chain3', fail: '1' });
  t.equal((await s.stat('k3')).kind, Kind.Active);
  t.equal(fallbacks.length, 1);
  t.match(fallbacks[0], /^CLIP_REGISTRY_UNAVAILABLE: registry down/);
  await s.remove('k3');
  await s.remove('k2');
  await s.remove('sha256:chain1');
  t.same(mounted, [], 'removing a remote snapshot unmounts it');
});

t.test('mounts checks remote parents are available', async (t) => {
  let healthy = true;
  const remote: RemoteLayers = {
    mount: async () => ({}),
    check: async () => {
      if (!healthy) throw unavailable('CLIP_LAYER_UNAVAILABLE', 'layer sha256:x');
    },
    mountMapped: async () => undefined,
    unmount: async () => undefined,
  };
  const s = await open(t, remote);
  await rejectsKind(t, s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L' }), 'already_exists');
  await s.prepare('c', 'L', {});
  t.equal((await s.mounts('c')).length, 1);
  healthy = false;
  await rejectsKind(t, s.mounts('c'), 'unavailable');
});

t.test('prepare and view check remote parents as mounts does, and leave nothing behind when they fail', async (t) => {
  let healthy = true;
  const parents: string[] = [];
  const remote: RemoteLayers = {
    mount: async (_mp, _labels, ctx) => {
      parents.push(ctx.parent ?? '<none>');
      return {};
    },
    check: async () => {
      if (!healthy) throw unavailable('CLIP_LAYER_UNAVAILABLE', 'layer sha256:x');
    },
    mountMapped: async () => undefined,
    unmount: async () => undefined,
  };
  const s = await open(t, remote);
  await rejectsKind(t, s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L' }), 'already_exists');
  await rejectsKind(t, s.prepare('y', 'L', { 'containerd.io/snapshot.ref': 'L2' }), 'already_exists');
  t.same(parents, ['', 'L'], 'the remote side is told the Prepare\'s parent (for the chain-ID check)');
  healthy = false;
  await rejectsKind(t, s.prepare('c', 'L2', {}), 'unavailable');
  await rejectsKind(t, s.view('v', 'L2', {}), 'unavailable');
  await rejectsKind(t, s.stat('c'), 'not_found');
  await rejectsKind(t, s.stat('v'), 'not_found');
  healthy = true;
  t.equal((await s.prepare('c', 'L2', {}))[0]?.type, 'overlay', 'works again once the layer is reachable');
  t.ok((await s.view('v', 'L2', {})).length > 0);
});

t.test('after a restart, parent checks wait for the re-mounts instead of answering UNAVAILABLE', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const mounted = new Set<string>();
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const remote = (slowRestore: boolean): RemoteLayers => ({
    mount: async (mp, _labels, ctx) => {
      if (ctx.restore && slowRestore) await gate;
      mounted.add(mp);
      return {};
    },
    check: async (mp) => {
      if (!mounted.has(mp)) throw unavailable('CLIP_LAYER_NOT_MOUNTED', `not mounted: ${mp}`);
    },
    mountMapped: async () => undefined,
    unmount: async (mp) => void mounted.delete(mp),
  });
  let s = await Snapshotter.open({ root, remote: remote(false) });
  await rejectsKind(t, s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L' }), 'already_exists');
  s.close();
  mounted.clear();
  s = await Snapshotter.open({ root, remote: remote(true) });
  t.teardown(() => s.close());
  const restored = s.restoreRemote();
  const prepared = s.prepare('c', 'L', {});
  let settled = false;
  void prepared.finally(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  t.equal(settled, false, 'the Prepare waits while the layer is being re-mounted');
  release();
  t.same(await restored, { mounted: 1, kept: 0, failed: 0 });
  t.equal((await prepared)[0]?.type, 'overlay', 'then succeeds on the re-mounted parent');
});

t.test('a surviving FUSE server: its layers are kept, not re-mounted; its unclaimed mounts are unmounted', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  // The fake server outlives each Snapshotter, as the FUSE server outlives the daemon.
  const served = new Set<string>();
  const calls: string[] = [];
  const remote = servingRemote(served, {
    mount: async (mp, _labels, ctx) => {
      calls.push(`mount ${ctx.restore ? 'restore' : 'new'} ${mp}`);
      served.add(mp);
      return {};
    },
    unmount: async (mp) => {
      calls.push(`unmount ${mp}`);
      served.delete(mp);
    },
  });
  let s = await Snapshotter.open({ root, remote });
  await rejectsKind(t, s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L1' }), 'already_exists');
  await rejectsKind(t, s.prepare('y', 'L1', { 'containerd.io/snapshot.ref': 'L2' }), 'already_exists');
  s.close();
  // A daemon killed between the server's mount and its own commit left a mount no snapshot claims.
  const orphan = join(root, 'snapshots', '99', 'fs');
  served.add(orphan);
  calls.length = 0;
  s = await Snapshotter.open({ root, remote });
  t.teardown(() => s.close());
  t.same(await s.restoreRemote(), { mounted: 0, kept: 2, failed: 0 }, 'both layers kept as served');
  t.same(calls, [`unmount ${orphan}`], 'nothing mounted again; the orphan unmounted through the server');
  t.equal((await s.prepare('c', 'L2', {}))[0]?.type, 'overlay');
  // The server was replaced by one that serves nothing: everything is mounted again.
  served.clear();
  calls.length = 0;
  t.same(await s.restoreRemote(), { mounted: 2, kept: 0, failed: 0 });
  t.same(calls.filter((c) => c.startsWith('mount restore')).length, 2);
});

t.test('a restore never unmounts a layer a Prepare mounted and committed while the FUSE server was asked what it serves', { skip: process.getuid?.() === 0 ? false : 'needs root to mount' }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  const mountedByRemote: string[] = [];
  t.teardown(async () => {
    for (const mp of mountedByRemote) await execFileP('umount', ['-l', mp]).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });
  const served = new Set<string>();
  let hold = false;
  let answerServed: (() => void) | undefined;
  let asked!: () => void;
  const servedAsked = new Promise<void>((r) => (asked = r));
  let mountAsked!: () => void;
  const mountStarted = new Promise<void>((r) => (mountAsked = r));
  let letMount!: () => void;
  const mountMay = new Promise<void>((r) => (letMount = r));
  const remote = servingRemote(served, {
    // A real kernel mount, so the restore's scan of the mount table sees it; made when the test says.
    mount: async (mp) => {
      mountAsked();
      await mountMay;
      await execFileP('mount', ['-t', 'tmpfs', 'layer', mp]);
      mountedByRemote.push(mp);
      served.add(mp);
      return {};
    },
    // Once held, answers with what it served when asked, but only when the test lets it.
    served: async () => {
      const then = [...served];
      if (!hold || answerServed !== undefined) return then;
      const answer = new Promise<void>((r) => (answerServed = r));
      asked();
      await answer;
      return then;
    },
  });
  const s = await Snapshotter.open({ root, remote });
  t.teardown(() => s.close());
  // A Prepare's mount is in flight when the restore starts (the FUSE server was just replaced),
  // and completes, with its commit, while the restore waits for the server's list of mounts.
  const prepared = s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L1' });
  await mountStarted;
  hold = true;
  const restored = s.restoreRemote();
  await servedAsked;
  letMount();
  await rejectsKind(t, prepared, 'already_exists');
  const mp = mountedByRemote[0]!;
  answerServed!();
  await restored;
  t.ok((await mountsUnder(join(root, 'snapshots'))).some((m) => m.mountPoint === mp), 'the new layer is still mounted');
  t.equal((await s.prepare('c', 'L1', {}))[0]?.type, 'overlay', 'and a container can start on it');
});

t.test('state survives reopening', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let s = await Snapshotter.open({ root });
  await s.prepare('a', '', { x: '1' });
  await s.commit('A', 'a', {});
  await s.prepare('b', 'A', {});
  s.close();
  s = await Snapshotter.open({ root });
  t.same((await s.list([])).map((i) => [i.name, i.parent, i.kind]), [
    ['A', '', Kind.Committed],
    ['b', 'A', Kind.Active],
  ]);
  await s.prepare('c', '', {});
  t.ok((await stat(join(s.snapshotsDir, '3'))).isDirectory(), 'ids keep increasing after reopen');
  s.close();
});
