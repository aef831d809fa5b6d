/**
 * Range reads through the whole stack (issue 8): with `[index] gzip_checkpoints` the index command
 * records zran checkpoints, and with `range_reads` a cold daemon serves the container's first reads
 * through HTTP Range requests of only the spans it needs — no whole-layer download before the
 * container's output. Byte-exactness is what makes the container run at all (busybox is read
 * through these spans).
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runClipCli } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';

t.setTimeout(300_000);

t.test('a cold lazy start through gzip range reads', async (t) => {
  const h = createHarness(t, 'clip-zran-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  await writeFile(
    config,
    `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n` +
      '[index]\ngzip_checkpoints = true\ncheckpoint_span_bytes = 262144\ncheckpoint_min_layer_bytes = 0\nrange_reads = true\n',
  );
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  const clip = (args: string[]) =>
    runClipCli(args, { timeoutMs: 180_000 });
  const tricky = images.tricky;
  await clip(['index', tricky.ref, '--plain-http', '--json', '--config', config]);
  const mark = registry.accessLogLines().length;
  await clip(['pull', tricky.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config]);
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'zran-1', 'cat', '/data/keep.txt', '/data/delete-dir/recreated.txt']);
  t.equal(res.stdout, 'keep\nback in layer 3\n', 'the container ran on bytes inflated from checkpoints');
  const layerGets = registry
    .accessLogLines()
    .slice(mark)
    .filter((l) => l.includes('"GET ') && tricky.layers.some((x) => l.includes(`/blobs/${x.digest}`)));
  t.ok(layerGets.length > 0, 'layer bytes were fetched on demand');
  t.ok(
    layerGets.every((l) => / 206 /.test(l)),
    `every layer fetch was a Range request answered 206:\n${layerGets.slice(0, 5).join('\n')}`,
  );
  t.notMatch(snap.log(), /fell back|range reads disabled/, 'no fallback to whole-layer downloads');
  const packGets = registry
    .accessLogLines()
    .slice(mark)
    .filter((l) => l.includes('"GET ') && /\/blobs\/sha256:/.test(l) && / 206 /.test(l) && !tricky.layers.some((x) => l.includes(`/blobs/${x.digest}`)));
  t.ok(packGets.length > 0, `windows came from the artifact's window packs by Range (${packGets.length} request(s)), not inside the index`);
});
