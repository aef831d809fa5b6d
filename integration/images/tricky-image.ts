/**
 * The multi-layer image that exercises every layer feature a snapshotter must preserve.
 *
 * Layer 1: busybox base and /data with files to be deleted, replaced and kept; hardlinks, symlinks,
 * owners, special modes, devices, long and non-ASCII names, a user xattr.
 * Layer 2: whiteouts (file, dir, non-ASCII name, symlink), an opaque dir, a setuid copy of busybox,
 * a copy with `security.capability`, a modified file, new hardlinks.
 * Layer 3: a directory deleted in layer 2 is created again with new content.
 */
import { BUSYBOX_PATH, addBusyboxRootfs } from './busybox-rootfs.js';
import type { StagingTree } from './staging-tree.js';

/** `cap_net_raw+ep` as a VFS_CAP_REVISION_2 `security.capability` value (what `setcap` writes). */
export const CAP_NET_RAW_XATTR = '0x0100000200200000000000000000000000000000';

export const LONG_NAME_150 = `${'l'.repeat(146)}.txt`;
export const LONG_NAME_255 = `${'x'.repeat(251)}.txt`;
/** A path longer than 255 bytes made of components within NAME_MAX. */
export const LONG_PATH = `data/long/${'d'.repeat(200)}/${'e'.repeat(200)}/${'f'.repeat(120)}.txt`;
export const UNICODE_FILE = 'data/unicode/naïve-文件-😀.txt';
export const UNICODE_DIR_FILE = 'data/unicode/Ünïcödé-dir/ƒichier';
export const UNICODE_DELETED = 'data/unicode/supprimé-é.txt';

async function layer1(t: StagingTree): Promise<void> {
  await addBusyboxRootfs(t);
  t.file('data/keep.txt', 'keep\n').file('data/delete-me.txt', 'gone in layer 2\n');
  t.file('data/delete-dir/a.txt', 'a\n').file('data/delete-dir/sub/b.txt', 'b\n');
  t.file('data/replace-dir/old1.txt', 'old\n').file('data/replace-dir/old-sub/old2.txt', 'old2\n');
  t.file('data/modified.txt', 'v1\n');
  t.file('data/hardlink-a.txt', 'shared by three names\n').hardlink('data/hardlink-b.txt', 'data/hardlink-a.txt');
  t.dir('data/sub').hardlink('data/sub/hardlink-c.txt', 'data/hardlink-a.txt');
  t.symlink('data/abs-link', '/data/keep.txt').symlink('data/rel-link', '../bin/busybox');
  t.symlink('data/dangling', '/nonexistent/target').symlink('data/dir-link', 'replace-dir');
  t.dir('data/owned', { uid: 1000, gid: 1000, mode: 0o750 }).file('data/owned/owned.txt', 'mine\n', { uid: 1000, gid: 1000, mode: 0o640 });
  t.symlink('data/owned/link-1000', 'owned.txt', { uid: 1000, gid: 1000 });
  t.dir('data/setgid-dir', { gid: 1000, mode: 0o2775 }).dir('data/sticky-dir', { mode: 0o1777 }).dir('data/empty-dir');
  await t.fifo('data/fifo');
  await t.charDevice('data/null-dev', 1, 3);
  t.file(`data/long/${LONG_NAME_150}`, 'name over 100 bytes\n').file(`data/long/${LONG_NAME_255}`, 'name of 255 bytes\n');
  t.file(LONG_PATH, 'path over 255 bytes\n').symlink('data/long-link', `/${LONG_PATH}`);
  t.file(UNICODE_FILE, 'unicode\n').file(UNICODE_DIR_FILE, 'unicode dir\n').file(UNICODE_DELETED, 'deleted\n');
  t.file('data/xattr-user.txt', 'has a user xattr\n');
  await t.xattr('data/xattr-user.txt', 'user.clip.test', 'hello');
}

async function layer2(t: StagingTree): Promise<void> {
  t.dir('data').dir('data/unicode').dir('bin');
  t.whiteout('data/delete-me.txt').whiteout('data/delete-dir').whiteout(UNICODE_DELETED).whiteout('data/dangling');
  t.opaque('data/replace-dir').file('data/replace-dir/new.txt', 'new\n').file('data/replace-dir/new-sub/new2.txt', 'new2\n');
  t.copy('bin/su-setuid', BUSYBOX_PATH, { mode: 0o4755 }).copy('bin/sg-setgid', BUSYBOX_PATH, { mode: 0o2755, gid: 1000 });
  t.copy('bin/ping-cap', BUSYBOX_PATH, { mode: 0o755 });
  await t.xattr('bin/ping-cap', 'security.capability', CAP_NET_RAW_XATTR);
  t.file('data/modified.txt', 'v2 from layer 2\n', { uid: 1000, gid: 1000, mode: 0o600 });
  t.file('data/layer2-hard-a', 'layer 2 hardlink\n').hardlink('data/layer2-hard-b', 'data/layer2-hard-a');
}

async function layer3(t: StagingTree): Promise<void> {
  t.dir('data').file('data/delete-dir/recreated.txt', 'back in layer 3\n');
}

/** Layers bottom first; each populates an empty staging tree. */
export const TRICKY_LAYERS: Array<(t: StagingTree) => Promise<void>> = [layer1, layer2, layer3];
