/**
 * Real redis-server processes on loopback ports (the ContentCache of tests, benchmarks and the
 * demo): one standalone server (optionally with requirepass), a 3-master Redis Cluster built with
 * `redis-cli --cluster create`, or a blackhole that accepts and never answers. Everything lives in
 * a temp dir and is stopped and removed through the caller's `teardown`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { ManagedProcess } from './managed-process.js';
import { runCommand } from './run-command.js';
import { waitUntil } from './wait.js';

/** Where a started server registers its stop (a tap test, or a Stack through `stack.teardownHost`). */
export interface Teardown {
  teardown(fn: () => Promise<void> | void): void;
}

/** One running redis-server. */
export interface RedisServer {
  port: number;
  address: string;
  /** Run redis-cli against this server (auth included). */
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
  /** Start again on the same port (after `stop`). */
  restart(): Promise<void>;
}

/** Options of a standalone or cluster node. */
export interface RedisServerOptions {
  requirepass?: string;
  clusterEnabled?: boolean;
}

async function makeDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-redis-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Start redis-server on a free loopback port and wait until it answers PING. */
export async function startRedis(t: Teardown, opts: RedisServerOptions = {}, dir?: string): Promise<RedisServer> {
  const root = dir ?? (await makeDir(t));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', root];
  if (opts.requirepass) args.push('--requirepass', opts.requirepass);
  if (opts.clusterEnabled) args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000');
  const proc = new ManagedProcess({ command: 'redis-server', args, logPath: join(root, `redis-${port}.log`) });
  t.teardown(() => proc.stop('SIGKILL', 2_000));
  const auth = opts.requirepass ? ['-a', opts.requirepass, '--no-auth-warning'] : [];
  const cli = async (...a: string[]): Promise<string> =>
    (await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...auth, ...a], { timeoutMs: 10_000 })).stdout.trim();
  const up = (): Promise<void> =>
    waitUntil(`redis-server :${port}`, async () => (await cli('PING').catch(() => '')) === 'PONG', 10_000, 50);
  await up();
  return {
    port,
    address: `127.0.0.1:${port}`,
    cli,
    stop: () => proc.stop('SIGKILL', 2_000),
    restart: async () => {
      proc.respawn();
      await up();
    },
  };
}

/** A Redis Cluster of three masters (no replicas), ready when every node reports cluster_state:ok. */
export async function startRedisCluster(t: Teardown): Promise<RedisServer[]> {
  const dir = await makeDir(t);
  const nodes = await Promise.all([0, 1, 2].map(() => startRedis(t, { clusterEnabled: true }, dir)));
  await runCommand('redis-cli', ['--cluster', 'create', ...nodes.map((n) => n.address), '--cluster-yes'], { timeoutMs: 30_000 });
  for (const n of nodes) {
    await waitUntil(`cluster_state:ok on ${n.address}`, async () => (await n.cli('CLUSTER', 'INFO')).includes('cluster_state:ok'), 20_000, 100);
  }
  return nodes;
}

/** A TCP server that accepts connections and never answers: a hung Redis. */
export async function startBlackhole(t: Teardown): Promise<string> {
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  );
  const addr = srv.address();
  return `127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
}
