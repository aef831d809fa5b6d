/**
 * A container start reads many small files of a lazy layer one after another (issue 15: the ML
 * image's `import torch`). A read that misses to the registry takes the absent spans after its own
 * in the same Range request (`[index] range_fetch_ahead_bytes`), so the files next to it cost no
 * request of their own. Through containerd: the same image and reads on two cold nodes, one with
 * fetch-ahead and one without; the reads skip two files in three, so the sequential readahead
 * (which needs reads within 128 KiB of each other) never starts, and no start profile or
 * background completion fetches anything. A third node reads the files last to first: a miss also
 * takes the absent spans before it, back to the start of its fetch-ahead block.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runClipCli, type Harness } from '../harness/index.js';
import { pseudoRandomBytes } from '../harness/pseudo-random.js';
import { buildAndPushImages, packLayer } from '../images/index.js';
import { baseLayerOf, gzipLayer, pushCraftedImage } from '../security/crafted-image.js';
import { rangeReadNodeConfig } from './range-node-config.js';

t.setTimeout(600_000);

const FILES = 36;
const FILE_BYTES = 96 * 1024;
const SPAN = 64 * 1024;
const name = (i: number): string => `/data/f${String(i).padStart(2, '0')}.bin`;
/** Every third file, three passes: neighbours in a pass are two files (≈ 193 KiB) apart in the tar. */
const ORDER = [0, 1, 2].flatMap((pass) => Array.from({ length: FILES / 3 }, (_, k) => 3 * k + pass));

t.test('a read that misses to the registry fetches the spans after it too: the small files next to it cost no request', async (t) => {
  const ha = createHarness(t, 'clip-ahead-a-');
  const hb = createHarness(t, 'clip-ahead-b-');
  const registry = await ha.startRegistry();
  const { busybox } = await buildAndPushImages({ hostPort: registry.hostPort }, ['busybox']);
  const src = join(ha.root, 'layer');
  mkdirSync(join(src, 'data'), { recursive: true });
  const files = Array.from({ length: FILES }, (_, i) => pseudoRandomBytes(`fetch-ahead-${i}`, FILE_BYTES));
  files.forEach((b, i) => writeFileSync(join(src, name(i)), b));
  await packLayer(src, `${src}.tar`);
  const image = await pushCraftedImage(registry.hostPort, 'fetch-ahead', [baseLayerOf(busybox), gzipLayer(readFileSync(`${src}.tar`))]);
  const digest = image.layers[1]!.digest;
  const indexConfig = join(ha.root, 'index-config.toml');
  await writeFile(indexConfig, `[index]\ngzip_checkpoints = true\ncheckpoint_span_bytes = ${SPAN}\ncheckpoint_min_layer_bytes = 0\n`);
  t.equal((await runClipCli(['index', image.ref, '--plain-http', '--config', indexConfig], { timeoutMs: 300_000 })).code, 0, 'indexes with checkpoints published');
  const want = (order: number[]): string => order.map((i) => `${createHash('sha256').update(files[i]!).digest('hex')}  ${name(i)}`).join('\n');

  /** A cold node with `aheadBytes` of fetch-ahead; returns the Range requests its container's reads (files in `order`) made for the data layer. */
  const node = async (h: Harness, aheadBytes: number, order = ORDER): Promise<number> => {
    const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
    const config = join(h.root, 'clip-config.toml');
    // A link time far above what this layer needs at any rate: the byte cap alone decides, however loaded the machine.
    await writeFile(config, rangeReadNodeConfig(c, SPAN, [`range_fetch_ahead_bytes = ${aheadBytes}`, 'range_fetch_ahead_ms = 600000']));
    await h.startSnapshotter({ extraArgs: ['--config', config] });
    await c.waitForSnapshotter('clip');
    const pulled = await runClipCli(['pull', image.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config], { timeoutMs: 300_000 });
    t.equal(pulled.code, 0, 'pulled lazily');
    const mark = registry.accessLogLines().length;
    const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), image.ref, `ahead-${aheadBytes}`, 'sha256sum', ...order.map(name)], { timeoutMs: 300_000 });
    t.equal(res.stdout.trim(), want(order), `fetch-ahead ${aheadBytes}: the container read every file byte-exact`);
    const gets = registry.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${digest}`));
    t.ok(gets.length > 0 && gets.every((l) => / 206 /.test(l)), `fetch-ahead ${aheadBytes}: the layer came by Range requests only`);
    return gets.length;
  };

  const without = await node(hb, 0);
  const withAhead = await node(ha, 4 * 1024 * 1024);
  t.ok(without >= FILES / 2, `without fetch-ahead: ${without} Range requests for ${FILES} files read apart from each other`);
  t.ok(withAhead <= 4, `with fetch-ahead: ${withAhead} Range requests (the layer is ${(FILES * FILE_BYTES) >> 10} KiB; each miss took up to 4 MiB after it)`);

  // Last file first: every miss lies just before the one before it, so fetching only what follows
  // a miss would cost a request per file; the miss also takes the spans before it, back to the
  // start of its 4 MiB block (the whole layer here).
  const backwards = await node(createHarness(t, 'clip-ahead-c-'), 4 * 1024 * 1024, Array.from({ length: FILES }, (_, i) => FILES - 1 - i));
  t.ok(backwards <= 2, `files read last to first: ${backwards} Range requests (${FILES} files)`);
});
