/**
 * Start and stop a real `docker-registry` (distribution 2.8) on a random loopback port, for
 * integration tests. Its access log (one line per request, with the path) goes to `logPath`, so
 * tests can check which blobs were fetched; application logs go to `<dir>/registry.stderr`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { freePort } from '../harness/free-port.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface StartRegistryOptions {
  /** Protect the registry with htpasswd (bcrypt) basic auth for this user. */
  htpasswd?: { username: string; password: string };
  /** Binary to run; default `docker-registry` from PATH. */
  binary?: string;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, as it appears in image references. */
  host: string;
  port: number;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** The access log (combined log format). */
  logPath: string;
  /** Temp directory holding config, storage and logs; removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

const run = promisify(execFile);

/** Start a registry; the caller must `stop()` it (e.g. in `t.teardown`). */
export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-registry-'));
  try {
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      try {
        return await launch(dir, port, opts);
      } catch (err) {
        if (attempt >= 2) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function launch(dir: string, port: number, opts: StartRegistryOptions): Promise<RunningRegistry> {
  const config = join(dir, 'config.yml');
  const logPath = join(dir, 'access.log');
  let auth = '';
  if (opts.htpasswd) {
    const { stdout } = await run('htpasswd', ['-Bbn', opts.htpasswd.username, opts.htpasswd.password]);
    await writeFile(join(dir, 'htpasswd'), stdout.trim() + '\n');
    auth = `auth:\n  htpasswd:\n    realm: clip-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  await writeFile(config, [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    auth,
  ].join('\n'));
  const out = openSync(logPath, 'a');
  const err = openSync(join(dir, 'registry.stderr'), 'a');
  const child = spawn(opts.binary ?? 'docker-registry', ['serve', config], { stdio: ['ignore', out, err] });
  closeSync(out);
  closeSync(err);
  const stop = async (): Promise<void> => {
    await kill(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(`http://127.0.0.1:${port}`, child);
  } catch (e) {
    await kill(child);
    throw e;
  }
  return { host: `127.0.0.1:${port}`, port, url: `http://127.0.0.1:${port}`, logPath, dir, stop };
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry at ${url} not ready after 15 s`);
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export { freePort };
