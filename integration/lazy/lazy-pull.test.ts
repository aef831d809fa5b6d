/**
 * Lazy pulls through real containerd (issue 4, item 6), each way a pull arrives:
 * - `clip-snapshotter pull` (CRI labels) after `clip-snapshotter index`: no layer blob is fetched
 *   at pull time, and layers nobody reads are never fetched;
 * - `ctr-remote images rpull` (stargz labels);
 * - containerd's Go client with only `snapshot.ref` (the nerdctl path), found via the content store;
 * and the failure cases: registry down before the first read (EIO in bounded time, daemon up,
 * recovery), a corrupted disk-cache file (detected, refetched), a SIGKILL of the daemon and the FUSE
 * server (re-mounted).
 * Plain `ctr images pull` staying correct and non-lazy is covered by containerd/clip-e2e.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHarness, diffManifests, imageManifest, runClipCli, runCommand, type Containerd, type Registry } from '../harness/index.js';
import { buildAndPushImages, type PushedImage } from '../images/index.js';

t.setTimeout(600_000);
const GO_BIN = fileURLToPath(new URL('../../../.work/bin/', import.meta.url));
let seq = 0;

interface PullSummary {
  lazy?: number;
  full?: number;
  present?: number;
}

async function clip(args: string[], timeoutMs = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await runClipCli(args, { allowFailure: true, timeoutMs });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

async function clipPull(c: Containerd, ref: string): Promise<{ code: number; summary: PullSummary; stderr: string }> {
  const res = await clip(['pull', ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  let summary: PullSummary = {};
  try {
    summary = JSON.parse(res.stdout) as PullSummary;
  } catch {
    /* the assertion on the exit code reports stderr */
  }
  return { code: res.code, summary, stderr: res.stderr };
}

/** `ctr run --rm`; a run still going after `timeoutMs` is killed and throws (never a pass). */
async function run(c: Containerd, ref: string, cmd: string[], allowFailure = false, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `lazy-${++seq}`, ...cmd], { allowFailure, timeoutMs });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

async function snapshotLabels(c: Containerd, name: string): Promise<Record<string, string>> {
  const res = await c.ctr(['snapshots', '--snapshotter', 'clip', 'info', name]);
  return (JSON.parse(res.stdout) as { Labels?: Record<string, string> }).Labels ?? {};
}

/** Blob GETs the registry served since `mark` (a count of access-log lines). */
function blobGets(r: Registry, mark: number, digest: string): number {
  return r.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${digest}`)).length;
}

/** Push a copy of an image under another name (a fresh, never-pulled image). */
async function copyImage(r: Registry, image: PushedImage, name: string): Promise<string> {
  const dest = `${r.hostPort}/clip-test/${name}:latest`;
  await runCommand('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${image.ref}`, `docker://${dest}`], { timeoutMs: 120_000 });
  return dest;
}

t.test('lazy pulls through containerd', async (t) => {
  const h = createHarness(t, 'clip-lazy-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort }, ['busybox', 'tricky', 'layered']);
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  // The daemon resolves snapshot.ref-only Prepares through this containerd's content store.
  const config = join(h.root, 'clip-config.toml');
  // Completed layers stay on FUSE: the outage and corruption cases need reads that reach the daemon
  // (an extracted layer would serve them from a plain directory; extracted-layers.test.ts covers that).
  await writeFile(config, `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n[cache]\nextract_completed = false\n`);
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  const tricky = images.tricky;
  let outageRef = '';

  await t.test('index, then clip-snapshotter pull: lazy, and unread layers are never fetched', async (t) => {
    const indexed = await clip(['index', tricky.ref, '--plain-http', '--json']);
    t.equal(indexed.code, 0, `index pushed: ${indexed.stderr.slice(-300)}`);
    const mark = registry.accessLogLines().length;
    const logMark = snap.log().length;
    const res = await clipPull(c, tricky.ref);
    t.equal(res.code, 0, `pull succeeded: ${res.stderr.slice(-400)}`);
    // The first layer's Prepare starts the index look-ups of the layers above it (issue 15).
    const mounted = snap.log().slice(logMark).split('\n').filter((l) => l.includes('"msg":"layer mounted"')).map((l) => JSON.parse(l) as { layer: string; looked_up_ahead: boolean });
    for (const [i, l] of tricky.layers.entries()) {
      t.equal(mounted.find((m) => m.layer === l.digest)?.looked_up_ahead, i > 0, `layer ${i + 1}: index ${i > 0 ? 'looked up ahead of its Prepare' : 'looked up by its own Prepare'}`);
    }
    t.equal(res.summary.lazy, tricky.layers.length, 'every layer prepared lazily');
    t.equal(res.summary.full, 0, 'no layer pulled in full');
    for (const l of tricky.layers) t.equal(blobGets(registry, mark, l.digest), 0, `layer ${l.digest.slice(7, 19)} not fetched by the pull`);
    let chain = '';
    for (const l of tricky.layers) {
      chain = chain === '' ? l.diffId : `sha256:${createHash('sha256').update(`${chain} ${l.diffId}`).digest('hex')}`;
      const labels = await snapshotLabels(c, chain);
      t.equal(labels['containerd.io/snapshot/remote'], 'remote snapshot', `${chain.slice(7, 19)}: ctr snapshots info shows the remote label`);
    }
    const out = await run(c, tricky.ref, ['cat', '/data/delete-dir/recreated.txt']);
    t.equal(out.stdout, 'back in layer 3\n', 'container output through lazy layers');
    t.equal(blobGets(registry, mark, tricky.layers[1]!.digest), 0, 'layer 2, which nobody read, was never fetched');
    t.ok(blobGets(registry, mark, tricky.layers[0]!.digest) >= 1, 'layer 1 (busybox) was fetched on demand');
  });

  await t.test('lazy rootfs is identical to overlayfs', async (t) => {
    const lazy = await imageManifest(c, tricky.ref, 'clip', join(h.root, 'mnt-clip'));
    await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', tricky.ref]);
    const overlay = await imageManifest(c, tricky.ref, 'overlayfs', join(h.root, 'mnt-ovl'));
    t.same(diffManifests(overlay, lazy, ['overlayfs', 'clip']), [], `identical (${lazy.size} entries)`);
  });

  await t.test('containerd Go client (only snapshot.ref, the nerdctl path) resolves layers through the content store', async (t) => {
    const res = await runCommand(join(GO_BIN, 'pullclient'), ['--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', images.busybox.ref], {
      allowFailure: true,
      timeoutMs: 180_000,
    });
    t.equal(res.code, 0, `Go client pull: ${res.stderr.slice(-400)}`);
    const labels = await snapshotLabels(c, images.busybox.layers[0]!.diffId); // one layer: chain ID = diffID
    t.equal(labels['containerd.io/snapshot/remote'], 'remote snapshot', 'the busybox layer is a lazily mounted snapshot');
    t.equal(labels['containerd.io/snapshot/clip.layer-digest'], images.busybox.layers[0]!.digest, 'found through the content store');
    t.notOk(labels['containerd.io/snapshot/cri.layer-digest'] ?? labels['containerd.io/snapshot/remote/stargz.digest'], 'the request carried no layer labels');
    t.notMatch(snap.log(), /fell back/, `no fallback: ${snap.log().split('\n').filter((l) => /fell back/.test(l)).join('\n').slice(0, 600)}`);
    t.equal((await run(c, images.busybox.ref, ['echo', 'go-client'])).stdout, 'go-client\n');
  });

  await t.test('ctr-remote images rpull (stargz labels)', async (t) => {
    // Its first layer is busybox's (already present); the second is new to the daemon.
    const layered = images.layered;
    const res = await runCommand(join(GO_BIN, 'ctr-remote'), ['--address', c.address, '--namespace', 'clip-test', 'images', 'rpull', '--plain-http', '--snapshotter', 'clip', layered.ref], {
      allowFailure: true,
      timeoutMs: 120_000,
    });
    t.equal(res.code, 0, `rpull: ${res.stderr.slice(-400)}`);
    const top = `sha256:${createHash('sha256').update(`${layered.layers[0]!.diffId} ${layered.layers[1]!.diffId}`).digest('hex')}`;
    const labels = await snapshotLabels(c, top);
    t.equal(labels['containerd.io/snapshot/remote'], 'remote snapshot', 'lazily mounted');
    t.equal(labels['containerd.io/snapshot/remote/stargz.digest'], layered.layers[1]!.digest, 'prepared from stargz-style labels');
    t.equal((await run(c, layered.ref, ['cat', '/etc/layered.txt'])).stdout, 'second layer\n');
  });

  await t.test('registry down before the first read: EIO in bounded time, daemon up, then recovery', async (t) => {
    const ref = (outageRef = await copyImage(registry, images.busybox, 'busybox-outage'));
    const pulled = await clipPull(c, ref);
    t.equal(pulled.code, 0, `pulled: ${pulled.stderr.slice(-300)}`);
    // Same layer as busybox (already a lazy snapshot): drop its cached bytes so the read needs the registry.
    const cacheDir = join(h.snapshotterPaths.root, 'cache', 'layers');
    const hex = images.busybox.layers[0]!.diffId.slice(7);
    t.ok((await readdir(cacheDir)).includes(hex), 'busybox layer is in the disk cache from earlier reads');
    // The process that serves FUSE crashes too (the daemon's crash alone leaves it serving).
    await snap.kill('SIGKILL');
    await snap.killFuseServer('SIGKILL');
    await (await import('node:fs/promises')).rm(join(cacheDir, hex));
    await snap.restart();
    await c.waitForSnapshotter('clip');
    await registry.stop();
    // Bounded: the run must end by itself within 60 s; a hung read makes run() throw.
    const failed = await run(c, ref, ['echo', 'unreachable'], true, 60_000);
    t.not(failed.code, 0, 'the container cannot start while its layer is unreachable');
    t.match(snap.log(), /unavailable|EIO|ECONNREFUSED/, 'the daemon logged why');
    await registry.start();
    const ok = await run(c, ref, ['echo', 'recovered'], false);
    t.equal(ok.stdout, 'recovered\n', 'the next read after the registry returns succeeds (daemon stayed up)');
  });

  await t.test('a corrupted disk-cache file is detected and refetched; SIGKILL restarts re-mount', async (t) => {
    const cacheDir = join(h.snapshotterPaths.root, 'cache', 'layers');
    const hex = images.busybox.layers[0]!.diffId.slice(7);
    await snap.kill('SIGKILL');
    await snap.killFuseServer('SIGKILL');
    const fh = await open(join(cacheDir, hex), 'r+');
    const { size } = await fh.stat();
    await fh.write(Buffer.from('corrupt!'), 0, 8, Math.floor(size / 2));
    await fh.close();
    await snap.restart();
    await c.waitForSnapshotter('clip');
    const mark = registry.accessLogLines().length;
    const out = await run(c, outageRef, ['echo', 'after-corruption'], true);
    t.equal(out.stdout, 'after-corruption\n', `the container runs on re-mounted lazy layers ${out.stderr.slice(-300)}`);
    t.ok(blobGets(registry, mark, images.busybox.layers[0]!.digest) >= 1, 'the corrupted layer was fetched again');
    t.match(await readFile(snap.logPath, 'utf8'), /lazy layers restored/);
  });
});
