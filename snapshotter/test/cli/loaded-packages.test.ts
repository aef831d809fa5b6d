// Memory (issue 15): the FUSE server serves reads; it must not load what only the daemon or an
// enabled feature needs. gRPC (containerd client, CRI proxy, Snapshots service), better-sqlite3
// (the daemon's metadata store) and the OpenTelemetry SDK are tens of MB of resident memory in
// every process that loads them. Each case starts a fresh Node and lists what it loaded.
import t from 'tap';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const CHILD = fileURLToPath(new URL('./loaded-packages-child.js', import.meta.url));

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
