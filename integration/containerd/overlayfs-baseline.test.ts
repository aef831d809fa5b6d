/** Proves the harness: the private stack with containerd's own overlayfs snapshotter. */
import t from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHarness, imageManifest, killShimsOf, mountsUnder, waitUntil } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { trickyRootfsProblems } from './tricky-expectations.js';

const started = Date.now();
t.setTimeout(600_000);
if (process.getuid?.() !== 0) t.plan(0, 'needs root: mounts, containerd and runc');

const h = createHarness(t, 'clip-base-');
const registry = await h.startRegistry();
const images = await buildAndPushImages({ hostPort: registry.hostPort });
const containerd = await h.startContainerd({ plainHttpRegistries: [registry.hostPort] });
const { ctr } = containerd;
const SN = ['--snapshotter', 'overlayfs'];

await t.test('busybox: pull from the private registry and run echo', async (t) => {
  await ctr(['images', 'pull', '--plain-http', ...SN, images.busybox.ref]);
  t.ok(registry.accessLogLines(images.busybox.layers[0]?.digest).length > 0, 'the layer blob was fetched from the private registry');
  const res = await ctr(['run', '--rm', ...SN, ...containerd.runcArgs(), images.busybox.ref, 'base-echo', 'echo', 'hello']);
  t.equal(res.stdout, 'hello\n');
});

await t.test('tricky: every layer feature is visible in the rootfs', async (t) => {
  await ctr(['images', 'pull', '--plain-http', ...SN, images.tricky.ref]);
  const manifest = await imageManifest(containerd, images.tricky.ref, 'overlayfs', join(h.root, 'mnt-tricky'));
  t.ok(manifest.size > 300, `rootfs has ${manifest.size} entries`);
  t.same(trickyRootfsProblems(manifest), []);
  t.same(mountsUnder(join(h.root, 'mnt-tricky')), [], 'ctr images unmount removed the mount');
  const res = await ctr(['run', '--rm', ...SN, ...containerd.runcArgs(), images.tricky.ref, 'base-cat', 'cat', '/data/delete-dir/recreated.txt', '/data/replace-dir/new.txt']);
  t.equal(res.stdout, 'back in layer 3\nnew\n');
  const missing = await ctr(['run', '--rm', ...SN, ...containerd.runcArgs(), images.tricky.ref, 'base-ls', 'ls', '/data/delete-me.txt'], { allowFailure: true });
  t.not(missing.code, 0, 'a whited-out file is absent inside the container');
});

await t.test('removing the images lets GC remove every snapshot', async (t) => {
  await ctr(['images', 'rm', '--sync', images.busybox.ref, images.tricky.ref]);
  const snapshotsDir = join(containerd.overlayfsRoot, 'snapshots');
  await waitUntil('overlayfs snapshots to be collected', async () => readdirSync(snapshotsDir).length === 0, 20_000);
  t.equal((await ctr(['snapshots', ...SN, 'ls'])).stdout.split('\n').filter(Boolean).length, 1, 'only the header line is left');
  t.same(mountsUnder(containerd.root), [], 'no mounts under containerd root');
});

await t.test('containerd restart keeps working', async (t) => {
  await containerd.restart();
  await ctr(['images', 'pull', '--plain-http', ...SN, images.busybox.ref]);
  const res = await ctr(['run', '--rm', ...SN, ...containerd.runcArgs(), images.busybox.ref, 'base-echo2', 'echo', 'again']);
  t.equal(res.stdout, 'again\n');
});

await t.test('teardown leaves nothing behind', async (t) => {
  const problems = await h.teardown();
  t.same(problems, []);
  t.same(mountsUnder(h.root), []);
  t.same(killShimsOf(containerd.address), [], 'no shim left running');
  t.notOk(existsSync(h.root), 'temp root removed');
  t.comment(`overlayfs-baseline took ${Date.now() - started} ms`);
});
