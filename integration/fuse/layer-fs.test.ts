/**
 * Real FUSE mounts of clip-indexed layers (needs root and /dev/fuse): a rich layer compared path
 * by path with `tar -x` of the same tar, whiteouts and opaque directories as overlayfs sees them,
 * EROFS, EIO on reader failure, and unmount with open files — once per FUSE driver (fuse-native's
 * libfuse and the kernel driver on /dev/fuse). (Read throughput is measured in
 * integration/bench/fuse-read-entry.ts.)
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { isMountPoint, mountDevice } from '../../snapshotter/src/fuse/index.js';
import { unmountAllUnder } from '../harness/mounts.js';
import { runCommand } from '../harness/run-command.js';
import { withDeadline } from '../harness/wait.js';
import { makeRichTree, mountTar, sh, tarDir, untar, writeTree } from './fixtures.js';
import type { ManifestEntry } from './tree-manifest.js';

const top = await mkdtemp('/tmp/clip-fuse-');
await chmod(top, 0o755); // other users must reach the mount points
t.teardown(async () => {
  await unmountAllUnder(top);
  await rm(top, { recursive: true, force: true });
});

const manifestScript = fileURLToPath(new URL('./tree-manifest.js', import.meta.url));
async function manifest(dir: string): Promise<Record<string, ManifestEntry>> {
  return JSON.parse((await runCommand(process.execPath, [manifestScript, dir], { timeoutMs: 120_000 })).stdout) as Record<string, ManifestEntry>;
}
const fails = async (cmd: string, args: string[]): Promise<string> => {
  const r = await runCommand(cmd, args, { allowFailure: true, timeoutMs: 30_000 });
  return r.code === 0 ? 'succeeded' : r.stderr;
};
const isWhiteoutMarker = (p: string): boolean => p.split('/').pop()?.startsWith('.wh.') ?? false;

function inodeGroups(m: Record<string, ManifestEntry>): string[] {
  const byIno = new Map<number, string[]>();
  for (const [p, e] of Object.entries(m)) byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), p]);
  return [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort().join(' ')).sort();
}

for (const driver of ['libfuse', 'kernel'] as const) {
  t.test(`driver ${driver}`, async (t) => {
  const root = join(top, driver);
  await mkdir(root, { recursive: true });
  await chmod(root, 0o755);

  t.test('a mounted layer matches tar -x of the same tar', async (t) => {
    const tar = join(root, 'rich.tar');
    await makeRichTree(join(root, 'rich-src'));
    await tarDir(join(root, 'rich-src'), tar);
    await untar(tar, join(root, 'rich-ref'));
    const layer = await mountTar(tar, join(root, 'rich-mnt'), undefined, driver);
    t.teardown(() => layer.fs.unmount());
    const mnt = layer.mountpoint;

    // Before anything is in the page cache: a failing reader is EIO, and the mount stays usable.
    layer.reader.failReads = true;
    t.match(await fails('dd', [`if=${mnt}/big.bin`, 'of=/dev/null', 'bs=64k']), /Input\/output error/, 'reader failure → EIO');
    layer.reader.failReads = false;

    const want = await manifest(join(root, 'rich-ref'));
    const got = await manifest(mnt);
    const expectedPaths = [...Object.keys(want).filter((p) => !isWhiteoutMarker(p)), 'gone'].sort();
    t.same(Object.keys(got).sort(), expectedPaths, 'same paths (markers become entries)');
    for (const [p, w] of Object.entries(want)) {
      if (isWhiteoutMarker(p)) continue;
      const g = got[p];
      if (g === undefined) continue;
      const xattrs = { ...g.xattrs };
      if (p === 'opq') delete xattrs['trusted.overlay.opaque'];
      t.same(
        { mode: g.mode.toString(8), uid: g.uid, gid: g.gid, size: g.size, nlink: g.nlink, rdev: g.rdev, mtimeMs: g.mtimeMs, sha256: g.sha256, target: g.target, xattrs },
        { mode: w.mode.toString(8), uid: w.uid, gid: w.gid, size: w.size, nlink: w.nlink, rdev: w.rdev, mtimeMs: w.mtimeMs, sha256: w.sha256, target: w.target, xattrs: w.xattrs },
        p,
      );
      if (g.size !== null) t.ok(g.blocks * 512 >= g.size && g.blocks * 512 < g.size + 8192, `${p}: st_blocks ${g.blocks} fits size ${g.size}`);
    }
    t.same(inodeGroups(got), inodeGroups(want), 'hardlinks share inodes exactly as extracted');
    if (driver === 'kernel') {
      // The tar was just written (page cache): its bytes went to the kernel by splice, and the
      // checksums above prove they are the right ones.
      t.ok(layer.reader.splicedBytes > 0, `file bytes spliced from the layer file (${layer.reader.splicedBytes})`);
      const dev = await mountDevice(mnt);
      const ra = Number((await readFile(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8')).trim());
      t.ok(ra >= 1000, `the mount reads ahead ${ra} KiB, not the kernel's default 128`);
    } else {
      t.equal(layer.reader.splicedBytes, 0, 'libfuse never splices');
    }
    t.equal(want['xa']?.xattrs['trusted.demo'], '0x00ff01', 'the fixture really has a binary trusted xattr');

    t.equal((await sh(`stat -c '%t:%T %F' '${mnt}/gone'`)).trim(), '0:0 character special file', 'whiteout is a 0/0 char device');
    t.equal(await sh(`getfattr --only-values -n trusted.overlay.opaque '${mnt}/opq'`), 'y', 'opaque dir answers y');
    t.match(await fails('getfattr', ['-n', 'user.nope', `${mnt}/xa`]), /No such attribute/, 'ENODATA');
    t.match(await fails('stat', [`${mnt}/nope`]), /No such file or directory/, 'ENOENT');
    t.match(await fails('stat', [`${mnt}/a.txt/x`]), /Not a directory/, 'ENOTDIR');
    for (const [cmd, args] of [['touch', [`${mnt}/new`]], ['sh', ['-c', `echo x > '${mnt}/a.txt'`]], ['mkdir', [`${mnt}/nd`]], ['rm', [`${mnt}/a.txt`]],
      ['setfattr', ['-n', 'user.x', '-v', '1', `${mnt}/a.txt`]], ['chmod', ['600', `${mnt}/a.txt`]], ['ln', [`${mnt}/a.txt`, `${mnt}/a2`]]] as const) {
      t.match(await fails(cmd, [...args]), /Read-only file system/, `${cmd} → EROFS`);
    }
    // allow_other lets containers' users in; default_permissions makes the kernel enforce mode bits.
    const asNobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    t.equal((await runCommand('setpriv', [...asNobody, 'cat', `${mnt}/a.txt`])).stdout, 'hello\n', 'other users can read 0644');
    t.match(await fails('setpriv', [...asNobody, 'cat', `${mnt}/owned`]), /Permission denied/, 'mode 0640 of another uid is enforced');
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    t.match(mountinfo, new RegExp(`${mnt} ro,.* - fuse\\.clip clip:${layer.diffId.slice(7, 19)} .*allow_other`), 'fsname, subtype, ro, allow_other');
  });

  t.test('two FUSE layers as overlayfs lower dirs: whiteouts and opaque dirs work', async (t) => {
    await writeTree(join(root, 'lower-src'), { 'keep.txt': 'keep', 'gone.txt': 'gone', 'opq/old.txt': 'old', 'opq/sub/deep.txt': 'deep', 'dir/plain.txt': 'p' });
    await writeTree(join(root, 'upper-src'), { '.wh.gone.txt': '', 'opq/.wh..wh..opq': '', 'opq/new.txt': 'new', 'added.txt': 'added' });
    await tarDir(join(root, 'lower-src'), join(root, 'lower.tar'));
    await tarDir(join(root, 'upper-src'), join(root, 'upper.tar'));
    const lower = await mountTar(join(root, 'lower.tar'), join(root, 'l'), undefined, driver);
    t.teardown(() => lower.fs.unmount());
    const upper = await mountTar(join(root, 'upper.tar'), join(root, 'u'), undefined, driver);
    t.teardown(() => upper.fs.unmount());

    const merged = join(root, 'merged');
    await mkdir(merged);
    await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upper.mountpoint}:${lower.mountpoint}`, merged]);
    t.teardown(() => runCommand('umount', [merged], { allowFailure: true }));
    t.equal(await sh(`ls -A '${merged}'`), 'added.txt\ndir\nkeep.txt\nopq\n', 'whiteout hides gone.txt and is not listed');
    t.equal(await sh(`ls -A '${merged}/opq'`), 'new.txt\n', 'opaque dir hides the lower contents');
    t.equal(await sh(`cat '${merged}/keep.txt' '${merged}/opq/new.txt'`), 'keepnew');
    t.match(await fails('stat', [`${merged}/gone.txt`]), /No such file or directory/);

    // As containerd mounts an active snapshot: writable upper on local disk over the FUSE layers.
    const rw = join(root, 'rw');
    await mkdir(join(rw, 'up'), { recursive: true });
    await mkdir(join(rw, 'work'));
    await mkdir(join(rw, 'fs'));
    await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `index=off,lowerdir=${upper.mountpoint}:${lower.mountpoint},upperdir=${rw}/up,workdir=${rw}/work`, `${rw}/fs`]);
    t.teardown(() => runCommand('umount', [`${rw}/fs`], { allowFailure: true }));
    await sh(`cd '${rw}/fs' && rm keep.txt && echo changed > dir/plain.txt && ls -A`);
    t.equal(await sh(`ls -A '${rw}/fs'`), 'added.txt\ndir\nopq\n');
    t.equal((await sh(`stat -c '%t:%T %F' '${rw}/up/keep.txt'`)).trim(), '0:0 character special file', 'overlay wrote its own whiteout');
    t.equal(await sh(`cat '${lower.mountpoint}/dir/plain.txt'`), 'p', 'layer untouched');
  });

  t.test('an id-translated mount (remap-ids) shows mapped owners; statfs answers for the layer', async (t) => {
    await writeTree(join(root, 'ids-src'), { 'root.txt': 'r', 'home/user/own.txt': 'u' });
    await sh(`chown -R 1000:100 '${join(root, 'ids-src', 'home/user')}' && chmod 4755 '${join(root, 'ids-src', 'root.txt')}'`);
    await tarDir(join(root, 'ids-src'), join(root, 'ids.tar'));
    const ids = { uid: (u: number) => 100000 + u, gid: (g: number) => 200000 + g };
    const plain = await mountTar(join(root, 'ids.tar'), join(root, 'ids-plain'), undefined, driver);
    t.teardown(() => plain.fs.unmount());
    const mapped = await mountTar(join(root, 'ids.tar'), join(root, 'ids-mapped'), ids, driver);
    t.teardown(() => mapped.fs.unmount());
    const owners = (mnt: string) => sh(`cd '${mnt}' && stat -c '%n %u:%g %a' . root.txt home/user home/user/own.txt`);
    t.equal(await owners(plain.mountpoint), '. 0:0 755\nroot.txt 0:0 4755\nhome/user 1000:100 755\nhome/user/own.txt 1000:100 644\n', 'as stored');
    t.equal(await owners(mapped.mountpoint), '. 100000:200000 755\nroot.txt 100000:200000 4755\nhome/user 101000:200100 755\nhome/user/own.txt 101000:200100 644\n', 'translated, modes as stored');
    // The kernel checks permissions against the translated owner (default_permissions).
    t.equal((await runCommand('setpriv', ['--reuid=101000', '--regid=200100', '--clear-groups', 'sh', '-c', `ls '${mapped.mountpoint}/home/user'`])).stdout, 'own.txt\n');

    // As a user-namespaced container's rootfs: overlay copy-up keeps the translated owner.
    const rw = join(root, 'ids-rw');
    await mkdir(join(rw, 'up'), { recursive: true });
    await mkdir(join(rw, 'work'));
    await mkdir(join(rw, 'fs'));
    await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `index=off,lowerdir=${mapped.mountpoint},upperdir=${rw}/up,workdir=${rw}/work`, `${rw}/fs`]);
    t.teardown(() => runCommand('umount', [`${rw}/fs`], { allowFailure: true }));
    await sh(`echo more >> '${rw}/fs/home/user/own.txt'`);
    t.equal(await sh(`stat -c '%u:%g' '${rw}/up/home/user/own.txt'`), '101000:200100\n', 'copied up with the mapped owner, no chown');

    const statfs = (await sh(`stat -f -c '%T %S %b %f %a %c %d' '${mapped.mountpoint}'`)).trim().split(' ');
    t.match(statfs[0], /^fuse/, 'a FUSE file system');
    t.equal(statfs[1], '4096', 'block size');
    t.ok(Number(statfs[2]) >= 1, `blocks ${statfs[2]}: the layer's size, never 0`);
    t.same(statfs.slice(3, 5), ['0', '0'], 'no free blocks: read-only');
    t.ok(Number(statfs[5]) >= 5, `files ${statfs[5]}: the layer's entries`);
    t.equal(statfs[6], '0', 'no free inodes');
  });

  t.test('unmount with a file held open detaches and leaves nothing in mountinfo', async (t) => {
    await writeTree(join(root, 'busy-src'), { 'f.txt': 'busy' });
    await tarDir(join(root, 'busy-src'), join(root, 'busy.tar'));
    const layer = await mountTar(join(root, 'busy.tar'), join(root, 'busy'), undefined, driver);
    const holder = spawn('sh', ['-c', `exec 3<'${layer.mountpoint}/f.txt'; cd '${layer.mountpoint}'; echo ready; exec sleep 60`], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.teardown(() => void holder.kill('SIGKILL'));
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    t.equal(layer.fs.openHandles, 1, 'the open file is tracked');
    // A held file must not block the unmount (it detaches); a hang fails here, not at tap's timeout.
    await withDeadline(layer.fs.unmount(), 20_000, 'unmount with a file held open');
    t.equal(await isMountPoint(layer.mountpoint), false);
    t.notMatch(await readFile('/proc/self/mountinfo', 'utf8'), layer.mountpoint);
    t.equal(layer.fs.mountpoint, undefined);
  });
  });
}
