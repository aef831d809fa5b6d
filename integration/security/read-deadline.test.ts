/**
 * Issue 12, deliver 8, end to end: a registry that trickles a layer's bodies (one byte per second,
 * Range and whole GETs alike) behind a loopback proxy. The container's read ends with EIO at the
 * read deadline (`[reads] timeout_ms`) instead of hanging, the daemon answers RPCs meanwhile, and
 * once the registry behaves again the same file reads correctly on the same mount.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { member, tar } from '../../snapshotter/test/clip/tar-fixtures.js';
import { createHarness, freePort, runCommand, waitUntil, type Containerd } from '../harness/index.js';
import { buildImage, IMAGE_SPECS } from '../images/index.js';
import { baseLayerOf, gzipLayer, pushCraftedImage } from './crafted-image.js';
import { startLyingProxy } from './lying-proxy.js';

t.setTimeout(900_000);
const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));
const READ_TIMEOUT_MS = 3_000;
let seq = 0;

async function clip(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { allowFailure: true, timeoutMs: 240_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

async function run(c: Containerd, ref: string, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `deadline-${++seq}`, ...cmd], { allowFailure: true, timeoutMs: 120_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr, ms: Date.now() - started };
}

/** The daemon still answers RPCs (a Prepare and a Remove through containerd, which reach it). */
async function answers(c: Containerd): Promise<boolean> {
  const key = `alive-${++seq}`;
  const prepared = await c.ctr(['snapshots', '--snapshotter', 'clip', 'prepare', key], { allowFailure: true, timeoutMs: 30_000 });
  if (prepared.code !== 0) return false;
  return (await c.ctr(['snapshots', '--snapshotter', 'clip', 'rm', key], { allowFailure: true, timeoutMs: 30_000 })).code === 0;
}

t.test('a registry that trickles a layer: EIO at the read deadline, the daemon keeps answering, the file reads again afterwards', async (t) => {
  const h = createHarness(t, 'clip-deadline-');
  const registry = await h.startRegistry();
  const proxy = await startLyingProxy(registry.hostPort);
  t.teardown(() => proxy.close());
  const base = baseLayerOf(await buildImage(IMAGE_SPECS.busybox));
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort, proxy.hostPort] });
  const metricsPort = await freePort();
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, [
    `containerd_address = "${c.address}"`, 'containerd_namespace = "clip-test"',
    '[registry]', `config_path = "${c.hostsDir}"`,
    '[reads]', `timeout_ms = ${READ_TIMEOUT_MS}`, 'stall_timeout_ms = 3000', 'range_retry_after_ms = 2000',
    '[metrics]', `address = "127.0.0.1:${metricsPort}"`, '',
  ].join('\n'));
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');

  const data = randomBytes(3 * 1024 * 1024);
  const md5 = createHash('md5').update(data).digest('hex');
  const layer = gzipLayer(tar(member({ name: 'big.bin', mode: 0o644 }, data)));
  // Pushed and pulled through the proxy, so every request for the layer goes through it.
  const image = await pushCraftedImage(proxy.hostPort, 'trickle', [base, layer]);
  const indexConfig = join(h.root, 'index-config.toml');
  await writeFile(indexConfig, '[index]\ncheckpoint_min_layer_bytes = 0\n');
  const indexed = await clip(['index', image.ref, '--plain-http', '--json', '--config', indexConfig]);
  t.equal(indexed.code, 0, `indexed with gzip checkpoints, so reads use Range requests: ${indexed.stderr.slice(-300)}`);
  const pulled = await clip(['pull', image.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(pulled.code, 0, `pulled lazily: ${pulled.stderr.slice(-300)}`);

  proxy.trickle(image.layers[1]!.digest);
  const logMark = snap.log().length;
  const reading = run(c, image.ref, ['md5sum', '/big.bin']);
  let settled = false;
  void reading.finally(() => (settled = true));
  await waitUntil('the container\'s read reached the trickling registry', async () => proxy.trickled > 0 || settled, 120_000);
  t.ok(proxy.trickled > 0, `the read reached the trickling registry (container: ${settled ? JSON.stringify(await reading).slice(0, 300) : 'still reading'})`);
  t.ok(await answers(c), 'the daemon answers RPCs while the read waits on the trickling registry');
  const failed = await reading;
  t.not(failed.code, 0, 'md5sum fails');
  t.match(failed.stderr + failed.stdout, /Input\/output error|I\/O error/, `with EIO: ${(failed.stderr + failed.stdout).slice(-200)}`);
  // The kernel retries a failed read once with a smaller size, so md5sum sees about two deadlines.
  t.comment(`the failing container ran ${failed.ms} ms (read deadline ${READ_TIMEOUT_MS} ms)`);
  const log = snap.log().slice(logMark);
  t.match(log, /CLIP_LAYER_READ_TIMEOUT/, 'the daemon logged the read deadline');
  // Ended by the configured deadline (the error names it), not after the trickle (3 MiB at 1 byte/s).
  t.match(log, new RegExp(`"errno":-5,"code":"CLIP_LAYER_READ_TIMEOUT","err":"[^"]*not available within ${READ_TIMEOUT_MS} ms[^"]*"[^\\n]*"msg":"fuse: request failed"`),
    'the FUSE read was answered EIO when its configured read deadline passed');
  t.match(log, /CLIP_RANGE_FETCH_TIMEOUT/, 'the Range request ended at the read\'s deadline');
  const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
  const maxDelay = /clip_event_loop_delay_seconds\{quantile="max"\} ([0-9.e+-]+)/.exec(metrics)?.[1];
  t.ok(maxDelay !== undefined, `the event-loop delay is exported (max ${maxDelay} s while the read waited)`);
  t.ok(await answers(c), 'the daemon answers RPCs after the failed read');

  proxy.trickle(undefined);
  let last = failed;
  await waitUntil('the same file reads correctly once the registry behaves', async () => {
    last = await run(c, image.ref, ['md5sum', '/big.bin']);
    return last.code === 0;
  }, 180_000);
  t.equal(last.stdout.split(' ')[0], md5, 'the container reads the true bytes');
  t.ok(proxy.abandoned > 0, `the daemon hung up on trickled bodies (${proxy.abandoned} of ${proxy.trickled})`);
});
