/** The harness's own pieces that can be checked without containerd: manifests, diffs, mount cleanup. */
import t from 'tap';
import { chmodSync, existsSync, linkSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness, diffManifests, mountsUnder, runCommand, snapshotRootfs } from './index.js';

const root = mkdtempSync(join(tmpdir(), 'clip-harness-'));
const h = new Harness(root);
t.teardown(() => h.teardown());

function makeTree(dir: string): void {
  mkdirSync(join(dir, 'sub dir/ünï'), { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  linkSync(join(dir, 'a.txt'), join(dir, 'sub dir/a-link'));
  symlinkSync('../a.txt', join(dir, 'sub dir/rel'));
  writeFileSync(join(dir, 'sub dir/ünï/x'), 'x');
}

await t.test('snapshotRootfs records types, modes, links and xattrs', async (t) => {
  const dir = join(root, 'tree1');
  makeTree(dir);
  await runCommand('setfattr', ['-n', 'user.k', '-v', 'v', join(dir, 'sub dir/ünï/x')]);
  const m = await snapshotRootfs(dir);
  t.equal(m.get('/a.txt')?.hardlinkGroup, '/a.txt');
  t.equal(m.get('/sub dir/a-link')?.hardlinkGroup, '/a.txt');
  t.equal(m.get('/sub dir/a-link')?.nlink, 2);
  t.equal(m.get('/sub dir/rel')?.linkTarget, '../a.txt');
  t.equal(m.get('/sub dir/ünï/x')?.xattrs['user.k'], '0x76');
  t.equal(m.get('/a.txt')?.sha256, '87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7');
});

await t.test('diffManifests names every kind of difference', async (t) => {
  const a = join(root, 'tree-a');
  const b = join(root, 'tree-b');
  makeTree(a);
  makeTree(b);
  t.same(diffManifests(await snapshotRootfs(a), await snapshotRootfs(b)), []);
  chmodSync(join(b, 'sub dir/ünï/x'), 0o4755);
  writeFileSync(join(b, 'a.txt'), 'changed\n');
  writeFileSync(join(b, 'extra'), '');
  await runCommand('setfattr', ['-n', 'user.only-b', '-v', '1', join(b, 'extra')]);
  const diff = diffManifests(await snapshotRootfs(a), await snapshotRootfs(b));
  t.match(diff.join('\n'), /\/extra: only in b/);
  t.match(diff.join('\n'), /\/sub dir\/ünï\/x: mode 0o644 \(a\) != 0o4755 \(b\)/);
  t.match(diff.join('\n'), /\/a\.txt: sha256 /);
  t.match(diff.join('\n'), /\/a\.txt: size 2 \(a\) != 8 \(b\)/);
});

await t.test('registry: basic auth, access log, restart on the same port', async (t) => {
  const reg = await h.startRegistry({ htpasswd: { username: 'u', password: 'p' } });
  t.equal((await fetch(`${reg.url}/v2/`)).status, 401, 'unauthenticated request refused');
  const auth = `Basic ${Buffer.from('u:p').toString('base64')}`;
  t.equal((await fetch(`${reg.url}/v2/`, { headers: { authorization: auth } })).status, 200);
  await reg.stop();
  await t.rejects(fetch(`${reg.url}/v2/`), 'stopped registry refuses connections');
  await reg.restart();
  t.equal((await fetch(`${reg.url}/v2/_catalog`, { headers: { authorization: auth } })).status, 200, 'back on the same port');
  t.ok(reg.accessLogLines('/v2/_catalog').length > 0, 'access log records the request path');
});

await t.test('teardown unmounts nested mounts, spaces in names included, and removes the root', async (t) => {
  const outer = join(root, 'mnt with space');
  const inner = join(outer, 'inner');
  mkdirSync(outer, { recursive: true });
  await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', outer]);
  mkdirSync(inner);
  await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', inner]);
  t.same(mountsUnder(root).map((m) => m.mountPoint), [inner, outer], 'deepest first, names unescaped');
  t.same(await h.teardown(), []);
  t.same(mountsUnder(root), []);
  t.notOk(existsSync(root));
});
