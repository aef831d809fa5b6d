/**
 * Lazy pulls through real containerd (issue 4, item 6): `clip-snapshotter pull` (CRI labels) and
 * containerd's Go client with only `snapshot.ref` (the nerdctl path) mount layers lazily; the
 * container's output and root filesystem equal the overlayfs ones; plain `ctr images pull` stays
 * correct and non-lazy.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHarness, diffManifests, imageManifest, runCommand, type Containerd } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';

t.setTimeout(600_000);
const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));
const GO_BIN = fileURLToPath(new URL('../../../.work/bin/', import.meta.url));
let seq = 0;

async function clipPull(c: Containerd, ref: string): Promise<{ code: number; summary: { lazy?: number; full?: number; present?: number } & Record<string, unknown>; stderr: string }> {
  const res = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'pull', ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http'], {
    allowFailure: true,
    timeoutMs: 180_000,
  });
  let summary = {};
  try {
    summary = JSON.parse(res.stdout);
  } catch {
    /* reported below */
  }
  return { code: res.code ?? -1, summary, stderr: res.stderr };
}

async function run(c: Containerd, ref: string, ...cmd: string[]): Promise<string> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `lazy-${++seq}`, ...cmd]);
  return res.stdout;
}

async function snapshotInfo(c: Containerd, name: string): Promise<{ Labels?: Record<string, string> }> {
  const res = await c.ctr(['snapshots', '--snapshotter', 'clip', 'info', name]);
  return JSON.parse(res.stdout);
}

t.test('lazy pulls through containerd', async (t) => {
  const h = createHarness(t, 'clip-lazy-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  // The daemon resolves snapshot.ref-only Prepares through this containerd's content store.
  const config = join(h.root, 'clip-config.toml');
  const snapAddress = h.snapshotterPaths.address;
  const c = await h.startContainerd({ snapshotters: { clip: snapAddress }, plainHttpRegistries: [registry.hostPort] });
  await writeFile(
    config,
    `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n`,
  );
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });

  await t.test('clip-snapshotter pull (CRI labels) prepares every layer lazily', async (t) => {
    const res = await clipPull(c, images.tricky.ref);
    t.equal(res.code, 0, `pull succeeded: ${res.stderr.slice(-400)}`);
    t.equal(res.summary.lazy, images.tricky.layers.length, 'every layer prepared lazily');
    t.equal(res.summary.full, 0, 'no layer pulled in full');
    const top = await c.ctr(['snapshots', '--snapshotter', 'clip', 'ls']);
    const names = top.stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]!);
    t.ok(names.length >= images.tricky.layers.length, 'one committed snapshot per layer');
    for (const n of names) {
      const info = await snapshotInfo(c, n);
      t.ok(info.Labels?.['containerd.io/snapshot/remote'], `${n.slice(0, 19)} carries containerd.io/snapshot/remote`);
    }
    t.equal(await run(c, images.tricky.ref, 'cat', '/data/delete-dir/recreated.txt'), 'back in layer 3\n', 'container output through lazy layers');
  });

  await t.test('lazy rootfs is identical to overlayfs', async (t) => {

    const clip = await imageManifest(c, images.tricky.ref, 'clip', join(h.root, 'mnt-clip'));
    await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', images.tricky.ref]);
    const overlay = await imageManifest(c, images.tricky.ref, 'overlayfs', join(h.root, 'mnt-ovl'));
    t.same(diffManifests(overlay, clip, ['overlayfs', 'clip']), [], `identical (${clip.size} entries)`);
  });

  await t.test('containerd Go client (only snapshot.ref, the nerdctl path) resolves layers through the content store', async (t) => {
    const res = await runCommand(join(GO_BIN, 'pullclient'), ['--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', images.busybox.ref], {
      allowFailure: true,
      timeoutMs: 180_000,
    });
    t.equal(res.code, 0, `Go client pull: ${res.stderr.slice(-400)}`);
    const chain = images.busybox.layers[0]!.diffId; // one layer: its chain ID is its diffID
    const info = await snapshotInfo(c, chain);
    t.ok(info.Labels?.['containerd.io/snapshot/remote'], 'the busybox layer is a lazily mounted snapshot');
    t.equal(info.Labels?.['containerd.io/snapshot/clip.layer-digest'], images.busybox.layers[0]!.digest, 'found through the content store');
    t.notMatch(snap.log(), /fell back/, `no fallback to an ordinary snapshot: ${snap.log().split('\n').filter((l) => /fell back/.test(l)).join('\n').slice(0, 600)}`);
    t.equal(await run(c, images.busybox.ref, 'echo', 'go-client'), 'go-client\n');
  });
});
