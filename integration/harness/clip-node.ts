/**
 * The multi-node fixture: a "node" is a private containerd plus its own clip daemon configured from
 * a plugin config (Redis standalone or Cluster, optionally a trace receiver), one harness per node;
 * `startTwoNodeStack` is the common start of every two-node test (node A's harness owns the
 * registry, both images pushed). Plus the checks the tests make on a node: registry access-log
 * bytes per layer, Prometheus counters, daemon log lines.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildAndPushImages, type PushedImage } from '../images/index.js';
import type { Containerd } from './containerd.js';
import { freePort } from './free-port.js';
import { daemonConfigToml } from './daemon-config.js';
import { createHarness, type Harness, type TeardownHost } from './harness.js';
import type { Registry } from './registry.js';
import { runClipCli, type Snapshotter } from './snapshotter.js';
import { setTimeout as sleep } from 'node:timers/promises';

let seq = 0;

/** One node of the test cluster. */
export interface ClusterNode {
  name: string;
  c: Containerd;
  snap: Snapshotter;
  metricsUrl: string;
}

/** How a node reaches the ContentCache (and, optionally, a trace receiver). */
export interface NodeSettings {
  redisAddresses: string[];
  cluster?: boolean;
  otlpUrl?: string;
  /** `[content_cache] key_file`: the cluster key that signs and verifies ContentCache objects. */
  keyFile?: string;
  /** No key, `allow_unverified = true`: the CRC-only ContentCache an operator must ask for. */
  allowUnverified?: boolean;
  /** More keys of `[content_cache]`. */
  contentCacheToml?: string[];
  /** Appended to the config (more TOML tables). */
  extraToml?: string;
}

/** Run the clip CLI in a fresh node (no tap loader). */
export async function clip(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await runClipCli(args, { allowFailure: true, timeoutMs: 180_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** Two node harnesses, the registry (under node A's) and the test images pushed to it. */
export interface TwoNodeStack {
  ha: Harness;
  hb: Harness;
  registry: Registry;
  images: { busybox: PushedImage; tricky: PushedImage };
}

/** The common start of a two-node test; nodes are then started with `startClusterNode`. */
export async function startTwoNodeStack(t: TeardownHost, prefix: string): Promise<TwoNodeStack> {
  const ha = createHarness(t, `${prefix}node-a-`);
  const hb = createHarness(t, `${prefix}node-b-`);
  const registry = await ha.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  return { ha, hb, registry, images };
}

/** Start a containerd and a clip daemon under `h` (one node per harness). */
export async function startClusterNode(h: Harness, name: string, registry: Registry, s: NodeSettings): Promise<ClusterNode> {
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const metricsPort = await freePort();
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, daemonConfigToml({
    containerdAddress: c.address,
    hostsDir: c.hostsDir,
    redisAddresses: s.redisAddresses,
    cluster: s.cluster === true,
    ...(s.keyFile ? { keyFile: s.keyFile } : {}),
    ...(s.allowUnverified ? { allowUnverified: true } : {}),
    ...(s.otlpUrl ? { tracingEndpoint: s.otlpUrl, serviceName: `clip-${name}` } : {}),
    metricsAddress: `127.0.0.1:${metricsPort}`,
    ...(s.contentCacheToml ? { contentCacheToml: s.contentCacheToml } : {}),
    ...(s.extraToml ? { extraToml: s.extraToml } : {}),
  }));
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  return { name, c, snap, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

/**
 * `clip-snapshotter pull` then `ctr run --rm`; returns the container's exit code and stdout. A
 * failed pull always throws; a failed run throws only with `allowFailure: false`.
 */
export async function pullAndRun(n: ClusterNode, ref: string, cmd: string[], { allowFailure = true } = {}): Promise<{ code: number; stdout: string }> {
  const pulled = await clip(['pull', ref, '--address', n.c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  if (pulled.code !== 0) throw new Error(`pull on ${n.name}: ${pulled.stderr}`);
  const res = await n.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...n.c.runcArgs(), ref, `${n.name}-${++seq}`, ...cmd], { allowFailure, timeoutMs: 120_000 });
  return { code: res.code ?? -1, stdout: res.stdout };
}

// ... "GET /v2/NAME/blobs/sha256:HEX HTTP/1.1" 200 12345 ...
const LINE = /"GET (\/v2\/\S+\/blobs\/(sha256:[0-9a-f]{64})(?:\?\S*)?) HTTP\/[\d.]+" (\d{3}) (\d+|-)/;

/** Blob GETs of `digests` in the access log after line `mark`: requests and response bytes. */
export function layerTraffic(r: Registry, mark: number, digests: string[]): { gets: number; bytes: number } {
  const out = { gets: 0, bytes: 0 };
  for (const line of r.accessLogLines().slice(mark)) {
    const m = LINE.exec(line);
    if (!m || !digests.includes(m[2]!)) continue;
    out.gets++;
    out.bytes += m[4] === '-' ? 0 : Number(m[4]);
  }
  return out;
}

/** A Prometheus sample `name{…source="…"…}` (0 when absent). */
export async function metric(url: string, name: string, source: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(`source="${source}"`) && !l.startsWith('#'));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

/** A fresh cluster key file (mode 0600) under `dir`, for `NodeSettings.keyFile`. */
export async function writeClusterKey(dir: string): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  const path = join(dir, 'cluster.key');
  await writeFile(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  return path;
}

/** The daemon's JSON log records whose `msg` is `msg`. */
export function logRecords(s: Snapshotter, msg: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of s.log().split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const rec = JSON.parse(line) as Record<string, unknown>;
      if (rec['msg'] === msg) out.push(rec);
    } catch {
      // not a JSON line (stderr noise)
    }
  }
  return out;
}

/** Poll `check` every 200 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await sleep(200);
  }
  return false;
}
