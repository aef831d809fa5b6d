/** remap-ids: a user-namespaced container's snapshot sees every layer owned by its host id range. */
import { chmod, chown, link, lstat, mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { Snapshotter, type RemoteLayers } from '../../src/snapshots/index.js';

const UIDS = 'containerd.io/snapshot/uidmapping';
const GIDS = 'containerd.io/snapshot/gidmapping';
const MAP_A = { [UIDS]: '0:100000:65536', [GIDS]: '0:200000:65536' };
const MAP_B = { [UIDS]: '0:300000:65536', [GIDS]: '0:300000:65536' };

async function open(t: Test, remote?: RemoteLayers): Promise<Snapshotter> {
  const root = await mkdtemp(join(tmpdir(), 'clip-remap-'));
  const s = await Snapshotter.open({ root, ...(remote ? { remote } : {}) });
  t.teardown(async () => {
    s.close();
    await rm(root, { recursive: true, force: true });
  });
  return s;
}

/** A committed on-disk layer with files of several owners, a setuid binary and a hardlink. */
async function layer(s: Snapshotter): Promise<string> {
  await s.prepare('l', '', {});
  const fs = join(s.snapshotsDir, '1', 'fs');
  await mkdir(join(fs, 'home/user'), { recursive: true });
  await writeFile(join(fs, 'root-file'), 'r');
  await writeFile(join(fs, 'home/user/own'), 'u');
  await chown(join(fs, 'home/user'), 1000, 1000);
  await chown(join(fs, 'home/user/own'), 1000, 100);
  await writeFile(join(fs, 'suid'), 'x');
  await chmod(join(fs, 'suid'), 0o4755);
  await link(join(fs, 'home/user/own'), join(fs, 'hard'));
  await s.commit('L', 'l', { 'containerd.io/snapshot.ref': 'L' });
  return fs;
}

const owner = async (p: string): Promise<[number, number]> => {
  const st = await lstat(p);
  return [st.uid, st.gid];
};

t.test('an on-disk layer is seen through an id-shifted copy, made once per mapping', { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, async (t) => {
  const s = await open(t);
  const orig = await layer(s);
  const ms = await s.prepare('c1', 'L', { ...MAP_A });
  const lower = ms[0]?.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length);
  t.match(lower, /\/snapshots\/1\/idmap\/[0-9a-f]{16}$/, 'the lower dir is the translated view of L');
  t.same(await owner(lower!), [100000, 200000], 'layer root owned by mapped root');
  t.same(await owner(join(lower!, 'root-file')), [100000, 200000]);
  t.same(await owner(join(lower!, 'home/user')), [101000, 201000]);
  t.same(await owner(join(lower!, 'home/user/own')), [101000, 200100]);
  t.equal((await stat(join(lower!, 'suid'))).mode & 0o7777, 0o4755, 'setuid survives the chown');
  const h = await lstat(join(lower!, 'hard'));
  t.equal(h.ino, (await lstat(join(lower!, 'home/user/own'))).ino, 'hardlinks stay hardlinks');
  t.same([h.uid, h.gid], [101000, 200100], 'a hardlinked file is shifted once, not once per name');
  t.same(await owner(join(orig, 'home/user/own')), [1000, 100], 'the layer itself is untouched');
  t.same(await owner(join(s.snapshotsDir, '2', 'fs')), [100000, 200000], 'upper dir owned by mapped root');
  t.same(await owner(join(s.snapshotsDir, '2', 'work')), [100000, 200000], 'work dir owned by mapped root');

  const ms2 = await s.prepare('c2', 'L', { ...MAP_A });
  t.equal(ms2[0]?.options.at(-1), `lowerdir=${lower}`, 'a second container with the same mapping shares the view');
  const other = await s.prepare('c3', 'L', { ...MAP_B });
  const lowerB = other[0]?.options.at(-1)?.slice('lowerdir='.length);
  t.not(lowerB, lower);
  t.same(await owner(join(lowerB!, 'home/user/own')), [301000, 300100]);
  t.same(await s.mounts('c1'), ms, 'Mounts answers the same');

  await s.remove('c1');
  t.ok(await stat(lower!).then(() => true, () => false), 'still used by c2');
  await s.remove('c2');
  t.notOk(await stat(lower!).then(() => true, () => false), 'removed with its last user');
  t.ok(await stat(lowerB!).then(() => true, () => false), 'another mapping keeps its own view');
  await s.remove('c3');
  t.same(await readdir(join(s.snapshotsDir, '1', 'idmap')), []);
});

t.test('a parent committed without snapshot.ref (containerd\'s own chowned copy) is used as is', { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, async (t) => {
  const s = await open(t);
  await layer(s);
  // containerd without remap-ids: Prepare "<id>-remap" on the image, chown everything, Commit without labels.
  await s.prepare('remap', 'L', {});
  await s.commit('chowned', 'remap', {});
  const ms = await s.prepare('c', 'chowned', { ...MAP_A });
  t.equal(ms[0]?.options.at(-1), `lowerdir=${s.snapshotsDir}/2/fs:${s.snapshotsDir}/1/fs`, 'no translated views: the ids are host ids already');
  t.same(await owner(join(s.snapshotsDir, '3', 'fs')), [100000, 200000], 'its upper dir still belongs to mapped root');
  t.notOk((await readdir(join(s.snapshotsDir, '1'))).includes('idmap'), 'nothing made under the image layer');
});

t.test('a container without parents gets its own dir owned by mapped root', { skip: process.getuid?.() !== 0 && 'needs root (chown)' }, async (t) => {
  const s = await open(t);
  const ms = await s.prepare('c', '', { ...MAP_A });
  t.equal(ms[0]?.type, 'bind');
  t.same(await owner(ms[0]!.source), [100000, 200000]);
  const v = await s.view('v', '', { ...MAP_B });
  t.same(await owner(v[0]!.source), [300000, 300000]);
});

t.test('a lazily served layer gets a second, translated FUSE mount, released with its last user', async (t) => {
  const mapped = new Map<string, string>();
  const remote: RemoteLayers = {
    mount: async () => ({}),
    check: async () => undefined,
    mountMapped: async (layerMp, target, ids) => void mapped.set(target, `${layerMp} uid0=${ids.uid(0)}`),
    unmount: async (mp) => void mapped.delete(mp),
  };
  const s = await open(t, remote);
  await s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L' }).catch(() => undefined);
  const ms = await s.view('v', 'L', { ...MAP_A });
  t.equal(ms[0]?.type, 'bind');
  t.match(ms[0]?.source, /\/snapshots\/1\/idmap\/[0-9a-f]{16}$/);
  t.same([...mapped.values()], [`${join(s.snapshotsDir, '1', 'fs')} uid0=100000`]);
  await s.prepare('c', 'L', { ...MAP_A });
  t.equal(mapped.size, 1, 'one translated mount per layer and mapping');
  await s.remove('v');
  t.equal(mapped.size, 1);
  await s.remove('c');
  t.equal(mapped.size, 0, 'unmounted with its last user');
});

t.test('bad mapping labels are refused before anything is created', async (t) => {
  const s = await open(t);
  const err = await s.prepare('c', '', { [UIDS]: '0:100000' }).catch((e: unknown) => e as { kind: string; code: string });
  t.match(err, { kind: 'invalid_argument', code: 'CLIP_IDMAP_INVALID' });
  const err2 = await s.view('c', '', { [UIDS]: '1:100000:10' }).catch((e: unknown) => e as { kind: string; code: string });
  t.match(err2, { kind: 'invalid_argument', code: 'CLIP_IDMAP_NO_ROOT' });
  t.same(await s.list([]), []);
  t.same(await readdir(s.snapshotsDir), []);
});

t.test('a restart re-mounts the translated views of existing user-namespaced snapshots', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'clip-remap-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const calls: string[] = [];
  const remote: RemoteLayers = {
    mount: async () => ({}),
    check: async () => undefined,
    mountMapped: async (_layerMp, target) => void calls.push(target),
    unmount: async () => undefined,
  };
  let s = await Snapshotter.open({ root, remote });
  await s.prepare('x', '', { 'containerd.io/snapshot.ref': 'L' }).catch(() => undefined);
  await s.prepare('c', 'L', { ...MAP_A });
  t.equal(calls.length, 1);
  s.close();
  s = await Snapshotter.open({ root, remote });
  t.teardown(() => s.close());
  await s.restoreRemote();
  t.equal(calls.length, 2, 'mounted again at start-up');
  t.equal(calls[1], calls[0], 'at the same place');
  await s.mounts('c');
  t.equal(calls.length, 2, 'not again on Mounts');
});
