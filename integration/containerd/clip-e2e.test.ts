/**
 * The same flow as the overlayfs baseline through `--snapshotter clip` (our daemon as a proxy
 * plugin): output, identical rootfs, survival of a daemon SIGKILL and a containerd restart, and
 * nothing left after the images are removed and GC runs.
 */
import t, { type Test } from 'tap';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHarness, diffManifests, imageManifest, killShimsOf, mountsUnder, snapshotterMissingReason, waitUntil, type Containerd, type Harness } from '../harness/index.js';
import { buildAndPushImages, type PushedImage } from '../images/index.js';
import { trickyRootfsProblems } from './tricky-expectations.js';

const started = Date.now();
t.setTimeout(600_000);
const CLIP = ['--snapshotter', 'clip'];
const OVERLAY = ['--snapshotter', 'overlayfs'];
let runSeq = 0;

// containerd dials a restarted proxy plugin lazily (backoff up to ~3 s): the first call may fail UNAVAILABLE.
async function runEcho(c: Containerd, ref: string, word: string, tries = 1): Promise<{ stdout: string; attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    const res = await c.ctr(['run', '--rm', ...CLIP, ...c.runcArgs(), ref, `clip-run-${++runSeq}`, 'echo', word], { allowFailure: attempt < tries });
    if (res.code === 0 || attempt >= tries) return { stdout: res.stdout, attempts: attempt };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function compareWithOverlay(t: Test, h: Harness, c: Containerd, image: PushedImage, label: string): Promise<void> {
  const clip = await imageManifest(c, image.ref, 'clip', join(h.root, `mnt-clip-${label}`));
  // The reference: the same image unpacked by containerd's own overlayfs snapshotter.
  await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', image.ref]);
  const overlay = await imageManifest(c, image.ref, 'overlayfs', join(h.root, `mnt-ovl-${label}`));
  t.same(trickyRootfsProblems(clip), [], `${label}: tricky features visible through clip`);
  t.same(diffManifests(overlay, clip, ['overlayfs', 'clip']), [], `${label}: clip rootfs identical to overlayfs (${clip.size} entries)`);
}

function clipSnapshotLines(c: Containerd): Promise<string[]> {
  return c.ctr(['snapshots', ...CLIP, 'ls']).then((r) => r.stdout.split('\n').filter(Boolean).slice(1));
}

async function main(): Promise<void> {
  const h = createHarness(t, 'clip-e2e-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  const snap = await h.startSnapshotter();
  const containerd = await h.startContainerd({ snapshotters: { clip: snap.address }, plainHttpRegistries: [registry.hostPort] });
  const { ctr } = containerd;
  t.teardown(() => {
    if (process.env.CLIP_E2E_SHOW_LOGS) process.stderr.write(snap.log());
  });

  await t.test('busybox: pull and run through clip', async (t) => {
    await ctr(['images', 'pull', '--plain-http', ...CLIP, images.busybox.ref]);
    t.ok((await clipSnapshotLines(containerd)).length >= 1, 'the layer is a committed clip snapshot');
    t.equal((await runEcho(containerd, images.busybox.ref, 'hello')).stdout, 'hello\n');
  });

  await t.test('tricky: rootfs through clip is identical to overlayfs', async (t) => {
    await ctr(['images', 'pull', '--plain-http', ...CLIP, images.tricky.ref]);
    await compareWithOverlay(t, h, containerd, images.tricky, 'fresh');
    const res = await ctr(['run', '--rm', ...CLIP, ...containerd.runcArgs(), images.tricky.ref, 'clip-cat', 'cat', '/data/delete-dir/recreated.txt', '/data/replace-dir/new.txt']);
    t.equal(res.stdout, 'back in layer 3\nnew\n');
  });

  await t.test('daemon SIGKILL and restart', async (t) => {
    await snap.kill('SIGKILL');
    await snap.restart();
    const { stdout, attempts } = await runEcho(containerd, images.busybox.ref, 'after-kill', 5);
    t.equal(stdout, 'after-kill\n');
    t.comment(`ctr run succeeded on attempt ${attempts} after the restart`);
    await compareWithOverlay(t, h, containerd, images.tricky, 'after-sigkill');
  });

  await t.test('containerd restart', async (t) => {
    await containerd.restart();
    t.equal((await runEcho(containerd, images.busybox.ref, 'after-containerd-restart', 5)).stdout, 'after-containerd-restart\n');
    await compareWithOverlay(t, h, containerd, images.tricky, 'after-containerd-restart');
  });

  await t.test('image removal and GC leave no snapshots or mounts', async (t) => {
    await ctr(['images', 'rm', '--sync', images.busybox.ref, images.tricky.ref]);
    const dirs = join(snap.root, 'snapshots');
    await waitUntil('clip snapshots to be collected', async () => (await clipSnapshotLines(containerd)).length === 0, 30_000, 500).catch(() => undefined);
    t.same(await clipSnapshotLines(containerd), [], 'ctr snapshots --snapshotter clip ls is empty');
    t.same(existsSync(dirs) ? readdirSync(dirs) : [], [], `${dirs} is empty`);
    t.same(mountsUnder(snap.root), [], 'no mounts under the snapshotter root');
    t.same(mountsUnder(containerd.root), [], 'no mounts under the containerd root');
    t.same(readdirSync(join(containerd.overlayfsRoot, 'snapshots')), [], 'overlayfs snapshots collected too');
  });

  await t.test('teardown leaves nothing behind', async (t) => {
    t.same(await h.teardown(), []);
    t.same(mountsUnder(h.root), []);
    t.same(killShimsOf(containerd.address), [], 'no shim left running');
    t.notOk(existsSync(h.root), 'temp root removed');
    t.comment(`clip-e2e took ${Date.now() - started} ms`);
  });
}

const missing = snapshotterMissingReason();
if (process.getuid?.() !== 0) t.plan(0, 'needs root: mounts, containerd and runc');
else if (missing) t.plan(0, `clip-snapshotter is not built: ${missing}`);
else await main();
