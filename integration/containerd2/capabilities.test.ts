/**
 * Issue 13, item 3 — the proxy capabilities on real containerd 2.x:
 * - `remap-ids`: a user-namespaced container (`ctr run --uidmap … --remap-labels`) on lazily served
 *   layers sees root-owned files through translated FUSE mounts; containerd does not take its
 *   slow path (a chowned copy of the whole rootfs committed as an extra snapshot);
 * - `exports = { root }`: CRI's ImageFsInfo names the snapshotter's root, whose statfs has a
 *   capacity; each lazily mounted layer answers statfs too;
 * - `rebase` declared anyway with parallel unpack on (clip does not declare it): every version's
 *   pull stays correct — one parentless layer, rootfs identical to overlayfs.
 */
import { readFileSync } from 'node:fs';
import { chmod, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  createHarness,
  diffManifests,
  goModulePins,
  imageManifest,
  mountsUnder,
  runCommand,
  waitUntil,
  type Containerd,
} from '../harness/index.js';
import { logRecords } from '../harness/clip-node.js';
import { buildAndPushImages } from '../images/index.js';

t.setTimeout(900_000);
const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));
const VERSIONS = goModulePins().containerd2Versions;
const NEWEST = VERSIONS[0]!;
const CLIP = ['--snapshotter', 'clip'];
const MAP = ['--uidmap', '0:100000:65536', '--gidmap', '0:100000:65536', '--remap-labels'];

interface SnapshotLine {
  key: string;
  parent: string;
  kind: string;
}

async function clipSnapshots(c: Containerd): Promise<SnapshotLine[]> {
  const out = (await c.ctr(['snapshots', ...CLIP, 'ls'])).stdout;
  return out
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/))
    .map((f) => (f.length === 3 ? { key: f[0]!, parent: f[1]!, kind: f[2]! } : { key: f[0]!, parent: '', kind: f[1]! }));
}

async function labelsOf(c: Containerd, key: string): Promise<Record<string, string>> {
  return (JSON.parse((await c.ctr(['snapshots', ...CLIP, 'info', key])).stdout) as { Labels?: Record<string, string> }).Labels ?? {};
}

t.test(`remap-ids, exports and statfs on containerd ${NEWEST}`, async (t) => {
  const h = createHarness(t, 'clip-caps-');
  // runc bind-mounts the rootfs from inside the user namespace: mapped root must reach it.
  await chmod(h.root, 0o711);
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  const snap = await h.startSnapshotter();
  const c = await h.startContainerd({
    version: NEWEST,
    snapshotters: { clip: snap.address },
    plainHttpRegistries: [registry.hostPort],
    proxyOptions: { clip: { capabilities: ['remap-ids'], exports: { root: snap.root } } },
    cri: { snapshotter: 'clip', disableSnapshotAnnotations: false, sandboxImage: images.busybox.ref },
  });
  t.teardown(() => {
    if (process.env.CLIP_E2E_SHOW_LOGS) process.stderr.write(snap.log());
  });

  // The lazy path: clip-snapshotter pull (CRI labels), every layer a FUSE mount.
  for (const image of [images.busybox, images.tricky]) {
    const pull = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'pull', image.ref, '--address', c.address, '--namespace', 'clip-test', ...CLIP, '--plain-http'], { allowFailure: true, timeoutMs: 300_000 });
    t.equal(pull.code, 0, `clip-snapshotter pull ${image.ref} (stderr: ${pull.stderr.slice(-800)})`);
  }
  const layers = await clipSnapshots(c);
  t.ok(layers.length >= 2, `${layers.length} layer snapshots`);
  for (const l of layers) t.equal((await labelsOf(c, l.key))['containerd.io/snapshot/remote'], 'remote snapshot', `${l.key.slice(0, 19)} is served lazily`);

  await t.test('a user-namespaced container on lazy layers: owners translated at the FUSE layer, no chown', async (t) => {
    const before = (await clipSnapshots(c)).map((s) => s.key).sort();
    const script = 'cat /proc/self/uid_map; id -u; stat -c "%u:%g" / /bin/busybox /etc/passwd; echo x > /made; stat -c "%u:%g" /made';
    const res = await c.ctr(['run', '--rm', ...CLIP, ...c.runcArgs(), ...MAP, images.busybox.ref, 'userns-bb', 'sh', '-c', script], { timeoutMs: 120_000 });
    const lines = res.stdout.trim().split('\n');
    t.match(lines[0], /^\s*0\s+100000\s+65536$/, 'the container runs in a user namespace');
    t.same(lines.slice(1), ['0', '0:0', '0:0', '0:0', '0:0'], 'container root owns the image files and what it writes');
    t.same((await clipSnapshots(c)).map((s) => s.key).sort(), before, 'no remapped copy of the rootfs was committed (containerd took no chown path)');
    t.ok(logRecords(snap, 'id-mapped layer view ready').some((r) => r['remote'] === true), 'clip mounted a translated view of a lazy layer');

    // Whiteouts and opaque dirs work through the translated views of a multi-layer image.
    const tricky = await c.ctr(['run', '--rm', ...CLIP, ...c.runcArgs(), ...MAP, images.tricky.ref, 'userns-tricky', 'sh', '-c', 'cat /data/delete-dir/recreated.txt /data/replace-dir/new.txt; ls /data/delete-me.txt 2>&1; true'], { timeoutMs: 120_000 });
    t.match(tricky.stdout, /^back in layer 3\nnew\n.*No such file or directory/s);
    // The views go with their last container, when containerd's GC removes its snapshot.
    const views = () => mountsUnder(snap.root).filter((m) => m.mountPoint.includes('/idmap/'));
    t.ok(logRecords(snap, 'id-mapped layer view ready').length >= 2, 'views were made for both images');
    await waitUntil('translated mounts gone after GC', async () => views().length === 0, 120_000, 250);
    t.same(views(), [], 'no translated mount left after the containers are gone');
  });

  await t.test('control: without remap-ids containerd chowns a copy of the rootfs into an extra snapshot', async (t) => {
    const snap2 = await h.startSnapshotter({ root: join(h.root, 'clip2', 'root'), address: join(h.root, 'clip2', 'clip.sock') });
    const c2 = await h.startContainerd({ version: NEWEST, dirName: 'containerd-no-remap', snapshotters: { clip: snap2.address }, plainHttpRegistries: [registry.hostPort] });
    const pull = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'pull', images.busybox.ref, '--address', c2.address, '--namespace', 'clip-test', ...CLIP, '--plain-http'], { allowFailure: true, timeoutMs: 300_000 });
    t.equal(pull.code, 0, 'lazy pull');
    const before = (await clipSnapshots(c2)).filter((s) => s.kind === 'Committed').length;
    // Without --rm: while the container exists its chowned parent is referenced, so containerd's GC
    // (which may run any time after a --rm) cannot take it before it is counted.
    const res = await c2.ctr(['run', ...CLIP, ...c2.runcArgs(), ...MAP, images.busybox.ref, 'userns-slow', 'stat', '-c', '%u:%g', '/bin/busybox'], { timeoutMs: 300_000 });
    t.equal(res.stdout, '0:0\n', 'correct, the slow way');
    const after = await clipSnapshots(c2);
    t.equal(after.filter((s) => s.kind === 'Committed').length, before + 1, 'containerd committed a chowned copy of the whole rootfs');
    await c2.ctr(['containers', 'rm', 'userns-slow']);
    t.same(logRecords(snap2, 'id-mapped layer view ready'), [], 'clip was not asked to translate');
  });

  await t.test('exports: CRI image filesystem is the snapshotter root, with a real capacity', async (t) => {
    const info = JSON.parse((await c.crictl(['imagefsinfo', '-o', 'json'])).stdout) as {
      status?: { imageFilesystems?: Array<{ fsId?: { mountpoint?: string } }> };
    };
    const mountpoint = info.status?.imageFilesystems?.[0]?.fsId?.mountpoint;
    t.equal(mountpoint, snap.root, 'ImageFsInfo reports the exported root');
    const st = await statfs(mountpoint!);
    t.ok(st.blocks > 0 && st.bsize > 0, `capacity ${st.blocks} × ${st.bsize} bytes`);
    t.ok(st.bavail > 0, 'available space');
    const fuse = mountsUnder(snap.root).filter((m) => m.fsType === 'fuse.clip');
    // Layers that completed and that no container reads over FUSE any more are unmounted (retired).
    const retired = logRecords(snap, 'FUSE mount retired; the layer is served from its extracted dir').length;
    t.ok(fuse.length + retired >= 2, `${fuse.length} lazily mounted layers, ${retired} retired after completing`);
    for (const m of fuse) {
      const s = await statfs(m.mountPoint);
      t.ok(s.blocks > 0 && s.files > 0 && s.bfree === 0, `${m.mountPoint.slice(snap.root.length)}: statfs ${s.blocks} blocks, ${s.files} files, read-only`);
    }
  });
});

for (const version of VERSIONS) {
  t.test(`rebase declared anyway, parallel unpack on containerd ${version}: still correct`, async (t) => {
    const h = createHarness(t, 'clip-rebase-');
    const registry = await h.startRegistry();
    const images = await buildAndPushImages({ hostPort: registry.hostPort });
    const snap = await h.startSnapshotter();
    const c = await h.startContainerd({
      version,
      snapshotters: { clip: snap.address },
      plainHttpRegistries: [registry.hostPort],
      maxConcurrentUnpacks: 4,
      proxyOptions: { clip: { capabilities: ['rebase'], exports: { root: snap.root, enable_remote_snapshot_annotations: 'true' } } },
    });
    t.teardown(() => {
      if (process.env.CLIP_E2E_SHOW_LOGS) process.stderr.write(snap.log());
    });
    await c.ctr(['images', 'pull', '--plain-http', ...CLIP, images.tricky.ref], { timeoutMs: 300_000 });
    const log = readFileSync(c.logPath, 'utf8');
    t.match(log, /image unpacked.*parallel=true/, 'containerd unpacked in parallel');
    const snaps = await clipSnapshots(c);
    const committed = snaps.filter((s) => s.kind === 'Committed');
    t.ok(committed.length >= 3, `${committed.length} layers`);
    t.equal(committed.filter((s) => s.parent === '').length, 1, 'only the first layer has no parent');
    const codes = logRecords(snap, 'lazy mount fell back to an ordinary snapshot').map((r) => r['code']);
    t.ok(codes.length >= 2 && codes.every((c) => c === 'CLIP_LAZY_PARENT_MISSING' || c === 'CLIP_CHAIN_ID_MISMATCH'), `layers prepared without their parent took the ordinary path (${codes.join(', ')})`);

    const clip = await imageManifest(c, images.tricky.ref, 'clip', join(h.root, 'mnt-clip'));
    await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', images.tricky.ref], { timeoutMs: 300_000 });
    const overlay = await imageManifest(c, images.tricky.ref, 'overlayfs', join(h.root, 'mnt-ovl'));
    t.same(diffManifests(overlay, clip, ['overlayfs', 'clip']), [], `rootfs identical to overlayfs (${clip.size} entries)`);
    const res = await c.ctr(['run', '--rm', ...CLIP, ...c.runcArgs(), images.tricky.ref, 'rebase-cat', 'cat', '/data/delete-dir/recreated.txt', '/data/replace-dir/new.txt']);
    t.equal(res.stdout, 'back in layer 3\nnew\n');
  });
}
