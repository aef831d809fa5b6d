// Memory (issue 15): the FUSE server serves reads; it must not load what only the daemon or an
// enabled feature needs. gRPC (containerd client, CRI proxy, Snapshots service), better-sqlite3
// (the daemon's metadata store) and the OpenTelemetry SDK are tens of MB of resident memory in
// every process that loads them. Each case starts a fresh Node and lists what it loaded.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { packagesIn } from './loaded-packages-names.js';

const CHILD = fileURLToPath(new URL('./loaded-packages-child.js', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./loaded-packages-preload.js', import.meta.url));
const LAUNCHER = fileURLToPath(new URL('../../../../snapshotter/bin/clip-snapshotter', import.meta.url));

async function loaded(mode: string): Promise<{ tracing: boolean; packages: string[] }> {
  const { stdout } = await promisify(execFile)(process.execPath, [CHILD, mode], { timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } });
  return JSON.parse(stdout) as { tracing: boolean; packages: string[] };
}

// Only the daemon or an enabled feature needs these (undici and the semantic conventions: nobody).
const NOT_IN_FUSE_SERVER = ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'better-sqlite3', '@opentelemetry/resources', '@opentelemetry/sdk-trace-base', '@opentelemetry/sdk-trace-node', '@opentelemetry/sdk-metrics', 'ioredis', 'fuse-native', 'undici', '@opentelemetry/semantic-conventions'];

t.test('the FUSE server with telemetry off loads no gRPC, metadata store, undici or OpenTelemetry SDK', async (t) => {
  const r = await loaded('fuse-server');
  t.equal(r.tracing, false);
  t.ok(r.packages.includes('pino'), `the check sees packages (${r.packages.join(', ')})`);
  t.same(r.packages.filter((p) => NOT_IN_FUSE_SERVER.includes(p)), []);
});

t.test('with an OTLP endpoint configured the FUSE server loads the tracing SDK (the check can see it)', async (t) => {
  const r = await loaded('fuse-server-traced');
  t.equal(r.tracing, true);
  for (const p of ['@opentelemetry/sdk-trace-base', '@opentelemetry/resources']) t.ok(r.packages.includes(p), `${p} loaded`);
});

t.test('the daemon loads gRPC and its metadata store (the check can see them)', async (t) => {
  const r = await loaded('daemon');
  for (const p of ['@grpc/grpc-js', 'better-sqlite3']) t.ok(r.packages.includes(p), `${p} loaded`);
});

t.test('a FUSE server started as the daemon starts one (the CLI) loads none of them either', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-loaded-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const list = join(dir, 'modules');
  const ready = join(dir, 'ready');
  const config = join(dir, 'config.toml');
  writeFileSync(config, `root = "${dir}/root"\naddress = "${dir}/clip.sock"\n[fuse_server]\ndriver = "kernel"\n`);
  const child = spawn(process.execPath, ['--import', PRELOAD, LAUNCHER, 'fuse-server', '--config', config, '--ready-file', ready], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '', CLIP_LOADED_MODULES_FILE: list },
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Serving (the ready file) means everything up to the first mount has loaded.
  const deadline = Date.now() + 60_000;
  while (!existsSync(ready) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.ok(existsSync(ready), `the FUSE server serves (${stderr.slice(-500)})`);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'it stops cleanly on SIGTERM');
  const packages = packagesIn(readFileSync(list, 'utf8').split('\n'));
  t.ok(packages.includes('pino'), `the check sees packages (${packages.join(', ')})`);
  t.same(packages.filter((p) => NOT_IN_FUSE_SERVER.includes(p)), []);
});
