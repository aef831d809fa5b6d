// Child process of loaded-packages.test.ts: starts part of the program in a fresh Node and prints
// (JSON on stdout) the npm packages that Node loaded: CommonJS ones from require.cache, ES modules
// from a load hook that records each one before it runs.
import { createRequire, register } from 'node:module';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packagesIn } from './loaded-packages-names.js';

const mode = process.argv[2];
const require = createRequire(import.meta.url);

const dir = await mkdtemp(join(tmpdir(), 'clip-loaded-packages-'));
const esmList = join(dir, 'esm-modules');
register('./loaded-packages-hooks.js', import.meta.url, { data: { file: esmList } });

/** The package names loaded so far (`@scope/name` or `name`). */
function loadedPackages(): string[] {
  let esm: string[] = [];
  try {
    esm = readFileSync(esmList, 'utf8').split('\n');
  } catch {
    // no ES module loaded through the hook yet
  }
  return packagesIn([...Object.keys(require.cache), ...esm]);
}

try {
  const { parseConfig } = await import('../../src/config/index.js');
  const { silentLogger } = await import('../../src/log/index.js');
  const cfg = parseConfig(`root = "${dir}/root"\naddress = "${dir}/s.sock"\n`, 'test.toml');
  const log = silentLogger();
  if (mode === 'fuse-server' || mode === 'fuse-server-traced') {
    // What `clip-snapshotter fuse-server` loads and starts before its first mount.
    await import('../../src/cli/fuse-server-command.js');
    const { startTelemetry } = await import('../../src/telemetry/index.js');
    const { openReadPath } = await import('../../src/cli/read-path.js');
    const endpoint = mode === 'fuse-server-traced' ? 'http://127.0.0.1:9/v1/traces' : '';
    // An empty env: the test's own OTEL_* variables must not turn tracing on.
    const telemetry = await startTelemetry({ ...cfg.tracing, endpoint, protocol: 'http/protobuf', metricsAddress: '', env: {} }, log);
    const readPath = await openReadPath(cfg, log);
    process.stdout.write(JSON.stringify({ tracing: telemetry.tracing, packages: loadedPackages() }));
    await readPath.close(log);
    await telemetry.shutdown();
  } else if (mode === 'daemon') {
    await import('../../src/cli/daemon.js');
    process.stdout.write(JSON.stringify({ tracing: false, packages: loadedPackages() }));
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
