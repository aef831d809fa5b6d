/**
 * Issue 12 end to end: images made to attack the snapshotter, pulled through real containerd, the
 * registry and the daemon. Each ends in the true bytes, an ordinary snapshot or a clean error —
 * never the planted bytes, never a hang — and the daemon answers RPCs throughout.
 * - annotations that inject `clip.*` labels naming another repository's layer: ignored;
 * - chain-ID squatting: a config naming a popular layer's diffID over different bytes is refused
 *   before its commit, so the popular image pulled next on the node runs on its own bytes;
 * - a tar with a GNU volume header of negative size (it used to hang the daemon): a typed
 *   fallback from the pull, a typed error from `clip-snapshotter index`.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childChainId } from '../../snapshotter/src/containerd/chain-id.js';
import { header, member, tar } from '../../snapshotter/test/clip/tar-fixtures.js';
import { createHarness, runCommand, waitUntil, type Containerd, type Registry } from '../harness/index.js';
import { buildImage, IMAGE_SPECS } from '../images/index.js';
import { baseLayerOf, gzipLayer, pushCraftedImage } from './crafted-image.js';
import { startLyingProxy } from './lying-proxy.js';

t.setTimeout(900_000);
const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));
const GO_BIN = fileURLToPath(new URL('../../../.work/bin/', import.meta.url));
let seq = 0;

async function clip(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // The command's own deadline is the "never a hang" bound: runCommand rejects when it passes.
  const res = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { allowFailure: true, timeoutMs: 240_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

const clipPull = (c: Containerd, ref: string) =>
  clip(['pull', ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);

async function run(c: Containerd, ref: string, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `sec-${++seq}`, ...cmd], { allowFailure: true, timeoutMs: 120_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

async function snapshotLabels(c: Containerd, name: string): Promise<Record<string, string> | undefined> {
  const res = await c.ctr(['snapshots', '--snapshotter', 'clip', 'info', name], { allowFailure: true });
  if (res.code !== 0) return undefined;
  return (JSON.parse(res.stdout) as { Labels?: Record<string, string> }).Labels ?? {};
}

/** The daemon still answers RPCs (a Prepare and a Remove through containerd, which reach it). */
async function answers(c: Containerd): Promise<boolean> {
  const key = `alive-${++seq}`;
  const prepared = await c.ctr(['snapshots', '--snapshotter', 'clip', 'prepare', key], { allowFailure: true, timeoutMs: 30_000 });
  if (prepared.code !== 0) return false;
  return (await c.ctr(['snapshots', '--snapshotter', 'clip', 'rm', key], { allowFailure: true, timeoutMs: 30_000 })).code === 0;
}

function blobGets(r: Registry, mark: number, digest: string): number {
  return r.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${digest}`)).length;
}

/** `lazy mount fell back` lines logged after `mark` (a count of log lines), as parsed JSON. */
function fallbacksSince(log: string, mark: number): Array<{ code?: string; reason?: string }> {
  return log.split('\n').slice(mark).filter((l) => l.includes('lazy mount fell back')).map((l) => JSON.parse(l) as { code?: string; reason?: string });
}

const file = (name: string, text: string): Buffer => tar(member({ name, mode: 0o644 }, text));

t.test('hostile images through real containerd', async (t) => {
  const h = createHarness(t, 'clip-sec-');
  const registry = await h.startRegistry();
  const base = baseLayerOf(await buildImage(IMAGE_SPECS.busybox));
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  // Completed layers stay on FUSE: a stack "no tier can serve" must not be rescued by an extracted
  // copy of its completed layer (extracted-layers.test.ts covers that path).
  await writeFile(config, `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n[cache]\nextract_completed = false\n`);
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  // containerd dialled the socket before the daemon existed and retries with backoff.
  await c.waitForSnapshotter('clip');
  const logLines = (): number => snap.log().split('\n').length - 1;

  await t.test('clip.* labels injected through manifest annotations do not make the node fetch another layer', async (t) => {
    const secretLayer = gzipLayer(file('secret.txt', 'secret bytes\n'));
    const secret = await pushCraftedImage(registry.hostPort, 'secret', [base, secretLayer]);
    const own = gzipLayer(file('who.txt', 'attacker\n'));
    const attacker = await pushCraftedImage(registry.hostPort, 'annotated', [base, {
      ...own,
      annotations: {
        'containerd.io/snapshot/clip.image-ref': secret.ref,
        'containerd.io/snapshot/clip.layer-digest': secret.layers[1]!.digest,
        'containerd.io/snapshot/clip.diff-id': secret.layers[1]!.diffId,
      },
    }]);
    const mark = registry.accessLogLines().length;
    const logMark = logLines();
    // containerd's own unpacker (the Go client) copies the annotations into the Prepare's labels.
    const res = await runCommand(join(GO_BIN, 'pullclient'), ['--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', attacker.ref], {
      allowFailure: true,
      timeoutMs: 180_000,
    });
    t.equal(res.code, 0, `pulled: ${res.stderr.slice(-400)}`);
    t.equal(blobGets(registry, mark, secret.layers[1]!.digest), 0, 'the layer the annotations named was never fetched');
    const top = childChainId(base.diffId, own.diffId);
    const labels = await snapshotLabels(c, top);
    t.equal(labels?.['containerd.io/snapshot/remote'], 'remote snapshot', 'the image\'s own layer was mounted lazily');
    // (containerd's own copy of the labels, which ctr shows, keeps the Prepare's injected values
    // over the daemon's; the daemon's record is what a restart mounts from, checked below.)
    t.same(fallbacksSince(snap.log(), logMark), [], 'no fallback: the injected labels were simply not honoured');
    t.equal((await run(c, attacker.ref, ['cat', '/who.txt'])).stdout, 'attacker\n', 'the container sees its own bytes');
    t.not((await run(c, attacker.ref, ['cat', '/secret.txt'])).code, 0, 'and not the other image\'s');
    // A restart re-mounts from the daemon's own record: still the image's own layer.
    const restores = (): number => snap.log().split('\n').filter((l) => l.includes('lazy layers restored')).length;
    const before = restores();
    // Both processes crash, so the layer really is mounted again from the daemon's record.
    await snap.kill('SIGKILL');
    await snap.killFuseServer('SIGKILL');
    await snap.restart();
    // Re-mounting runs after the socket is up; Prepares on a layer not yet back answer UNAVAILABLE.
    await waitUntil('the restarted daemon re-mounted its lazy layers', async () => restores() > before, 60_000);
    await c.waitForSnapshotter('clip');
    const again = await run(c, attacker.ref, ['cat', '/who.txt']);
    t.equal(again.stdout, 'attacker\n', `after a restart too ${again.stderr.slice(-300)}`);
    t.equal(blobGets(registry, mark, secret.layers[1]!.digest), 0, 'and the named layer is still never fetched');
    t.notMatch(snap.log(), /could not re-mount/, 'every lazy layer re-mounted');
  });

  await t.test('chain-ID squatting: the victim pulled after the squatter runs on its true bytes', async (t) => {
    const popularLayer = gzipLayer(file('popular.txt', 'true popular bytes\n'));
    const planted = gzipLayer(file('popular.txt', 'PLANTED\n'));
    // The squatter's config claims the popular layer's diffID for its own, different blob.
    const squatter = await pushCraftedImage(registry.hostPort, 'squatter', [base, { blob: planted.blob, diffId: popularLayer.diffId }]);
    const victim = await pushCraftedImage(registry.hostPort, 'popular', [base, popularLayer]);
    const chain = childChainId(base.diffId, popularLayer.diffId);
    const logMark = logLines();
    const pulled = await clipPull(c, squatter.ref);
    t.not(pulled.code, 0, 'the squatter\'s pull fails: its layer is not what its config says');
    t.match(pulled.stderr, /CLIP_PULL_DIFF_ID_MISMATCH|unpacked to/, `containerd's applier caught it on the fallback: ${pulled.stderr.slice(-300)}`);
    const codes = fallbacksSince(snap.log(), logMark).map((f) => f.code);
    t.ok(codes.includes('CLIP_CHAIN_ID_MISMATCH'), `the lazy commit was refused with its own code (${codes.join(', ')})`);
    t.equal(await snapshotLabels(c, chain), undefined, 'nothing was committed under the popular layer\'s chain ID');
    const ok = await clipPull(c, victim.ref);
    t.equal(ok.code, 0, `the victim pulls: ${ok.stderr.slice(-300)}`);
    t.equal((await snapshotLabels(c, chain))?.['containerd.io/snapshot/clip.layer-digest'], victim.layers[1]!.digest, 'its chain ID now holds its own layer');
    t.equal((await run(c, victim.ref, ['cat', '/popular.txt'])).stdout, 'true popular bytes\n', 'the victim runs on its true bytes');
    t.ok(await answers(c), 'the daemon answers RPCs');
  });

  await t.test('a GNU volume header with a negative size: typed errors, no hang, the daemon keeps serving', async (t) => {
    const volume = header({ name: 'vol', type: 'V', gnu: true, size: -1024, base256: ['size'] });
    const hostileTar = tar(member({ name: 'a.txt', mode: 0o644 }, 'hello\n'), volume, member({ name: 'b.txt', mode: 0o644 }, 'x\n'));
    const hostile = await pushCraftedImage(registry.hostPort, 'negative-size', [base, gzipLayer(hostileTar)]);
    const logMark = logLines();
    const pulled = await clipPull(c, hostile.ref);
    const codes = fallbacksSince(snap.log(), logMark).map((f) => f.code);
    t.ok(codes.includes('CLIP_TAR_SIZE_RANGE'), `the lazy pull fell back with a clear code (${codes.join(', ')}); pull exit ${pulled.code}`);
    t.ok(await answers(c), 'the daemon answers RPCs after the hostile layer');
    const indexed = await clip(['index', hostile.ref, '--plain-http', '--json']);
    t.equal(indexed.code, 1, 'clip-snapshotter index fails');
    t.match(indexed.stderr, /negative or larger than/, `with the typed error: ${indexed.stderr.slice(-300)}`);
    // A well-formed image still pulls lazily and runs on the same daemon.
    const fine = await pushCraftedImage(registry.hostPort, 'after-hostile', [base, gzipLayer(file('fine.txt', 'still serving\n'))]);
    const ok = await clipPull(c, fine.ref);
    t.equal(ok.code, 0, `a good image pulls afterwards: ${ok.stderr.slice(-300)}`);
    t.equal((await run(c, fine.ref, ['cat', '/fine.txt'])).stdout, 'still serving\n');
  });

  await t.test('Prepare and View over a lazy layer no tier can serve answer UNAVAILABLE at once', async (t) => {
    // A lazy layer whose bytes are nowhere but in a registry that is down: its disk-cache copy is
    // removed while the daemon is stopped, then the registry stops.
    const image = await pushCraftedImage(registry.hostPort, 'parent-check', [base, gzipLayer(file('p.txt', 'parent\n'))]);
    const pulled = await clipPull(c, image.ref);
    t.equal(pulled.code, 0, `pulled: ${pulled.stderr.slice(-300)}`);
    t.equal((await run(c, image.ref, ['cat', '/p.txt'])).stdout, 'parent\n');
    const restores = (): number => snap.log().split('\n').filter((l) => l.includes('lazy layers restored')).length;
    const before = restores();
    await snap.kill('SIGKILL');
    await snap.killFuseServer('SIGKILL');
    const layers = join(h.snapshotterPaths.root, 'cache', 'layers');
    for (const name of await readdir(layers)) await rm(join(layers, name), { recursive: true, force: true });
    await snap.restart();
    await waitUntil('the restarted daemon re-mounted its lazy layers', async () => restores() > before, 60_000);
    await c.waitForSnapshotter('clip');
    await registry.stop();
    const top = childChainId(childChainId('', base.diffId), image.layers[1]!.diffId);
    const prepared = await c.ctr(['snapshots', '--snapshotter', 'clip', 'prepare', `unreachable-${++seq}`, top], { allowFailure: true, timeoutMs: 60_000 });
    t.not(prepared.code, 0, 'Prepare on the unreachable stack fails');
    t.match(prepared.stderr, /unavailable/i, `as UNAVAILABLE: ${prepared.stderr.slice(-300)}`);
    const viewed = await c.ctr(['snapshots', '--snapshotter', 'clip', 'view', `unreachable-view-${++seq}`, top], { allowFailure: true, timeoutMs: 60_000 });
    t.not(viewed.code, 0, 'View fails too');
    t.match(viewed.stderr, /unavailable/i, `as UNAVAILABLE: ${viewed.stderr.slice(-300)}`);
    t.match(snap.log(), /"method":"Prepare"[^\n]*"code":14/, 'the daemon answered UNAVAILABLE (gRPC 14)');
    await registry.start();
    t.equal((await run(c, image.ref, ['cat', '/p.txt'])).stdout, 'parent\n', 'works again once the registry is back');
  });

  await t.test('a registry that answers a Range with an endless body: the read gets the true bytes, nothing buffers it', async (t) => {
    const proxy = await startLyingProxy(registry.hostPort);
    t.teardown(() => proxy.close());
    const data = randomBytes(3 * 1024 * 1024);
    const layer = gzipLayer(tar(member({ name: 'big.bin', mode: 0o644 }, data)));
    // Pushed through the proxy, so the image's name (and every later request) goes through it.
    const image = await pushCraftedImage(proxy.hostPort, 'lying-ranges', [base, layer]);
    const indexConfig = join(h.root, 'index-config.toml');
    await writeFile(indexConfig, '[index]\ncheckpoint_min_layer_bytes = 0\n');
    const indexed = await clip(['index', image.ref, '--plain-http', '--json', '--config', indexConfig]);
    t.equal(indexed.code, 0, `indexed with gzip checkpoints, so reads use Range requests: ${indexed.stderr.slice(-300)}`);
    const pulled = await clipPull(c, image.ref);
    t.equal(pulled.code, 0, `pulled lazily: ${pulled.stderr.slice(-300)}`);
    proxy.lieAbout(image.layers[1]!.digest);
    const logMark = logLines();
    const out = await run(c, image.ref, ['md5sum', '/big.bin']);
    t.equal(out.stdout.split(' ')[0], createHash('md5').update(data).digest('hex'), `the container read the true bytes ${out.stderr.slice(-200)}`);
    t.ok(proxy.lies > 0, `the proxy lied (${proxy.lies} ranges)`);
    t.ok(proxy.surplusBytes < 64 * 1024 * 1024, `the surplus was refused early (${proxy.surplusBytes} bytes written before the daemon hung up)`);
    const after = snap.log().split('\n').slice(logMark).join('\n');
    t.match(after, /CLIP_REGISTRY_BODY_TOO_LONG/, 'the daemon said why it left the range path');
    t.ok(await answers(c), 'the daemon answers RPCs');
  });
});
