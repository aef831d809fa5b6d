/** What the tricky image's root filesystem must look like through any correct snapshotter. */
import type { Manifest } from '../harness/index.js';
import { CAP_NET_RAW_XATTR, LONG_NAME_150, LONG_NAME_255, LONG_PATH, UNICODE_DELETED, UNICODE_DIR_FILE, UNICODE_FILE } from '../images/index.js';

/** One failed expectation per string; empty when the rootfs is as built. */
export function trickyRootfsProblems(m: Manifest): string[] {
  const problems: string[] = [];
  const expect = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  const e = (p: string) => m.get(p);
  for (const gone of ['/data/delete-me.txt', '/data/delete-dir/a.txt', '/data/delete-dir/sub', '/data/dangling', `/${UNICODE_DELETED}`, '/data/replace-dir/old1.txt', '/data/replace-dir/old-sub']) {
    expect(!m.has(gone), `${gone} should be deleted by a whiteout`);
  }
  for (const p of m.keys()) expect(!p.split('/').some((n) => n.startsWith('.wh.')), `whiteout marker visible: ${p}`);
  expect(e('/data/delete-dir/recreated.txt')?.type === 'file', 'dir recreated in layer 3 should hold recreated.txt');
  expect(e('/data/replace-dir/new.txt')?.type === 'file' && e('/data/replace-dir/new-sub/new2.txt')?.type === 'file', 'opaque dir should hold the new content');
  expect(e('/data/keep.txt')?.type === 'file', '/data/keep.txt kept');
  const mod = e('/data/modified.txt');
  expect(mod?.size === 16 && mod.uid === 1000 && mod.mode === 0o600, `modified.txt should be layer 2's (got ${JSON.stringify(mod)})`);
  expect(e('/bin/su-setuid')?.mode === 0o4755, `setuid bit on /bin/su-setuid (mode ${e('/bin/su-setuid')?.mode.toString(8)})`);
  expect(e('/bin/sg-setgid')?.mode === 0o2755 && e('/bin/sg-setgid')?.gid === 1000, 'setgid file /bin/sg-setgid');
  expect(e('/data/setgid-dir')?.mode === 0o2775, 'setgid dir');
  expect(e('/data/sticky-dir')?.mode === 0o1777 && e('/tmp')?.mode === 0o1777, 'sticky dirs');
  expect(e('/bin/ping-cap')?.xattrs['security.capability'] === CAP_NET_RAW_XATTR, `security.capability on /bin/ping-cap (got ${JSON.stringify(e('/bin/ping-cap')?.xattrs)})`);
  expect(e('/data/xattr-user.txt')?.xattrs['user.clip.test'] === '0x68656c6c6f', 'user.clip.test xattr');
  const hl = ['/data/hardlink-a.txt', '/data/hardlink-b.txt', '/data/sub/hardlink-c.txt'].map(e);
  expect(hl.every((x) => x?.hardlinkGroup === '/data/hardlink-a.txt' && x.nlink === 3), `three hardlinks share an inode (got ${JSON.stringify(hl.map((x) => [x?.hardlinkGroup, x?.nlink]))})`);
  expect(e('/data/layer2-hard-b')?.hardlinkGroup === '/data/layer2-hard-a', 'layer 2 hardlinks share an inode');
  expect(e('/data/abs-link')?.linkTarget === '/data/keep.txt' && e('/data/rel-link')?.linkTarget === '../bin/busybox', 'symlink targets');
  expect(e('/data/long-link')?.linkTarget === `/${LONG_PATH}`, 'long symlink target');
  expect(e('/bin/sh')?.type === 'symlink', '/bin/sh is a symlink to busybox');
  expect(e('/data/owned')?.uid === 1000 && e('/data/owned/owned.txt')?.gid === 1000 && e('/data/owned/link-1000')?.uid === 1000, 'uid/gid 1000 owners');
  expect(e('/data/empty-dir')?.type === 'dir' && e('/var/empty')?.type === 'dir', 'empty dirs');
  expect(e('/data/fifo')?.type === 'fifo', 'fifo');
  expect(e('/data/null-dev')?.type === 'char' && e('/data/null-dev')?.rdev === '1:3', 'char device 1:3');
  for (const p of [`/data/long/${LONG_NAME_150}`, `/data/long/${LONG_NAME_255}`, `/${LONG_PATH}`, `/${UNICODE_FILE}`, `/${UNICODE_DIR_FILE}`]) expect(e(p)?.type === 'file', `${p} present`);
  return problems;
}
