/**
 * Issue 12, deliver 7, end to end: a span of a layer's gzip checkpoint table (from its index
 * artifact, so untrusted) is bounded by `[index] max_span_bytes`. The artifact here is built with
 * 256 KiB spans and the node allows 128 KiB: its range tier refuses the tables
 * (CLIP_ZRAN_SPAN_TOO_LARGE) before any Range request, and the container reads the true bytes from
 * whole, diffID-verified layers. (`integration/zran/lazy-range.test.ts` is the same setup within
 * the bound: there every layer fetch is a Range request.)
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runClipCli } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';

t.setTimeout(300_000);

t.test('a table whose spans are over max_span_bytes: no range reads, the true bytes', async (t) => {
  const h = createHarness(t, 'clip-spanbound-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const head = `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n`;
  // Whoever pushed the artifact chose its spans.
  const indexConfig = join(h.root, 'index-config.toml');
  await writeFile(indexConfig, `${head}[index]\ngzip_checkpoints = true\ncheckpoint_span_bytes = 262144\ncheckpoint_min_layer_bytes = 0\n`);
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, `${head}[index]\nrange_reads = true\ncheckpoint_span_bytes = 65536\nmax_span_bytes = 131072\n`);
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  const tricky = images.tricky;
  const indexed = await runClipCli(['index', tricky.ref, '--plain-http', '--json', '--config', indexConfig], { timeoutMs: 180_000 });
  t.equal(indexed.code, 0, 'artifact pushed');
  const mark = registry.accessLogLines().length;
  const pulled = await runClipCli(['pull', tricky.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config], { timeoutMs: 180_000 });
  t.match(pulled.stdout + pulled.stderr, /lazy/, 'pulled lazily');
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'spanbound-1', 'cat', '/data/keep.txt', '/data/delete-dir/recreated.txt']);
  t.equal(res.stdout, 'keep\nback in layer 3\n', 'the container reads the true bytes');

  const refused = new Set<string>();
  for (const line of snap.log().split('\n')) {
    if (!line.includes('"code":"CLIP_ZRAN_SPAN_TOO_LARGE"') || !line.includes('range reads disabled for layer')) continue;
    const digest = /"layer":"(sha256:[0-9a-f]{64})"/.exec(line)?.[1];
    if (digest) refused.add(digest);
  }
  t.ok(refused.size > 0, `tables refused with their code for ${refused.size} layer(s)`);
  t.match(snap.log(), /"err":"gzip table: span \d+ decodes to \d+ bytes, over \[index\] max_span_bytes \(131072\)/, 'the log says which span and which key');
  const gets = registry.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && [...refused].some((d) => l.includes(`/blobs/${d}`)));
  t.ok(gets.length > 0, 'those layers were fetched');
  t.ok(gets.every((l) => !/ 206 /.test(l)), `never by Range:\n${gets.slice(0, 5).join('\n')}`);
});
