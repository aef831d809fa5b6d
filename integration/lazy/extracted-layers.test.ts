/**
 * Completed layers stop needing FUSE (issue 14, deliverable 3), through real containerd: a container
 * started while the layers complete in the background reads over FUSE; once every layer is on disk
 * and extracted, a new container's overlay has no FUSE mount among its lower dirs, its rootfs is
 * identical to overlayfs's, it keeps reading with the daemon stopped, and the FUSE mounts retire
 * once the early container is gone — staying retired across a restart.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, diffManifests, imageManifest, mountsUnder, type Containerd } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { clip, eventually, logRecords } from '../harness/clip-node.js';
import { extractedDirOf } from '../harness/extracted-dirs.js';
import { trickyRootfsProblems } from '../containerd/tricky-expectations.js';

t.setTimeout(600_000);

const READ = ['cat', '/data/keep.txt', '/data/modified.txt', '/data/delete-dir/recreated.txt'];
const OUT = 'keep\nv2 from layer 2\nback in layer 3\n';

// mountinfo escapes space, tab, newline and backslash as \ooo.
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The lower dirs of the overlay mounted as container `id`'s rootfs, from /proc/self/mountinfo. */
function containerLowers(id: string): string[] | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f[sep + 1] !== 'overlay' || !unescape(f[4] ?? '').endsWith(`/${id}/rootfs`)) continue;
    const lower = (f[sep + 3] ?? '').split(',').find((o) => o.startsWith('lowerdir='));
    return lower === undefined ? [] : unescape(lower.slice('lowerdir='.length)).split(':');
  }
  return undefined;
}

const dropCaches = (): Promise<void> => writeFile('/proc/sys/vm/drop_caches', '3');

async function exec(c: Containerd, id: string, n: number): Promise<string> {
  await dropCaches();
  return (await c.ctr(['task', 'exec', '--exec-id', `read-${n}`, id, ...READ])).stdout;
}

t.test('a container started after its layers completed reads plain directories, no FUSE', async (t) => {
  const h = createHarness(t, 'clip-extract-');
  const registry = await h.startRegistry();
  const tricky = (await buildAndPushImages({ hostPort: registry.hostPort })).tricky;
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  // Slow background completion, so the first container starts while the layers are still lazy.
  await writeFile(config, [
    `containerd_address = "${c.address}"`, 'containerd_namespace = "clip-test"',
    '[registry]', `config_path = "${c.hostsDir}"`,
    '[index]', 'gzip_checkpoints = true', 'checkpoint_span_bytes = 65536', 'checkpoint_min_layer_bytes = 0', 'range_reads = true',
    'range_completion_bytes_per_sec = 400000', 'range_completion_idle_ms = 0', '',
  ].join('\n'));
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--config', config])).code, 0, 'indexes with checkpoints published');
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  const fuseMounts = (): Set<string> => new Set(mountsUnder(snap.root).filter((m) => m.fsType === 'fuse.clip').map((m) => m.mountPoint));
  const extractedDir = (diffId: string): string => extractedDirOf(snap.root, diffId);

  t.equal((await clip(['pull', tricky.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config])).code, 0, 'pulled lazily');
  t.equal(fuseMounts().size, tricky.layers.length, 'every layer is a FUSE mount');

  await c.ctr(['run', '-d', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'early', 'sleep', '3600']);
  const early = containerLowers('early');
  t.ok(early && early.length === tricky.layers.length, `early container's overlay found (${early?.length} lower dirs)`);
  const earlyFuse = (early ?? []).filter((d) => fuseMounts().has(d));
  t.ok(earlyFuse.length > 0, `the container started before completion reads ${earlyFuse.length} layers over FUSE`);
  t.equal(await exec(c, 'early', 1), OUT);

  const allExtracted = (): boolean => tricky.layers.every((l) => existsSync(join(extractedDir(l.diffId), 'record.json')));
  t.ok(await eventually(allExtracted, 240_000), 'every layer completed and was extracted');
  t.equal(logRecords(snap, 'layer extraction failed; it stays served over FUSE').length, 0, 'no extraction failed');

  await c.ctr(['run', '-d', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'late', 'sleep', '3600']);
  const late = containerLowers('late') ?? [];
  t.equal(late.length, tricky.layers.length, 'late container\'s overlay found');
  const fuseNow = fuseMounts();
  t.same(late.filter((d) => fuseNow.has(d)), [], 'no lower dir of the late container is a FUSE mount');
  t.same(late.filter((d) => !d.startsWith(join(snap.root, 'cache', 'extracted') + '/')), [], 'every lower dir is an extracted layer');
  t.same(late, [...tricky.layers].reverse().map((l) => join(extractedDir(l.diffId), 'root')), 'the layers, top first');
  t.equal(await exec(c, 'late', 1), OUT, 'the late container reads its files');

  for (const d of earlyFuse) t.ok(fuseNow.has(d), `FUSE mount ${d.slice(snap.root.length)} stays while the early container reads it`);
  t.equal(await exec(c, 'early', 2), OUT, 'the early container still reads over FUSE');

  // The rootfs as new containers get it (a View of the image: extracted lower dirs) against overlayfs's.
  const fromDisk = await imageManifest(c, tricky.ref, 'clip', join(h.root, 'mnt-clip'));
  await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', tricky.ref]);
  const overlay = await imageManifest(c, tricky.ref, 'overlayfs', join(h.root, 'mnt-ovl'));
  t.same(trickyRootfsProblems(fromDisk), [], 'whiteouts, opaque dirs, hardlinks, xattrs, setuid, devices as expected');
  t.same(diffManifests(overlay, fromDisk, ['overlayfs', 'extracted']), [], `rootfs identical to overlayfs's (${fromDisk.size} entries)`);

  // The early container goes: nothing reads over FUSE any more, so every FUSE mount retires.
  await c.ctr(['task', 'kill', '-s', 'SIGKILL', 'early']);
  await eventually(async () => (await c.ctr(['task', 'rm', 'early'], { allowFailure: true })).code === 0, 60_000);
  await c.ctr(['containers', 'rm', 'early']);
  t.ok(await eventually(() => fuseMounts().size === 0, 60_000), 'every FUSE mount retired once no container reads through it');

  // No daemon at all: the late container keeps reading with the snapshotter stopped.
  await snap.stop();
  t.equal(await exec(c, 'late', 2), OUT, 'the late container reads with the daemon stopped');
  const restores = logRecords(snap, 'lazy layers restored').length;
  await snap.restart();
  await c.waitForSnapshotter('clip');
  t.ok(await eventually(() => logRecords(snap, 'lazy layers restored').length > restores, 60_000), 'restore finished');
  t.same([...fuseMounts()], [], 'layers on disk come back without FUSE mounts after a restart');
  await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'after-restart', ...READ]).then((r) => t.equal(r.stdout, OUT, 'a new container after the restart'));
  t.equal(await exec(c, 'late', 3), OUT);
});
