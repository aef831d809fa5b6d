/**
 * Daemon memory (issue 15, deliverable 5): RSS of the daemon and its FUSE server (the default split
 * mode) idle, after `clip-snapshotter pull` of an image of many small layers (one FUSE mount each),
 * and after one file of every layer was read through a View's lower dirs.
 */
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { daemonConfigToml } from '../harness/daemon-config.js';
import { mountsUnder } from '../harness/mounts.js';
import { clipPull, type ClipNode } from '../harness/stack-node.js';
import type { Stack } from '../harness/stack.js';
import { packLayer } from '../images/index.js';
import { MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST } from '../images/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { runCommand } from '../harness/run-command.js';
import { TEST_NAMESPACE } from '../harness/containerd.js';
import { rssBytes } from './proc-util.js';
import { newEntry, type BenchEntry } from './types.js';

export interface MemoryOptions {
  layers: number;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Push an image of `n` layers, each one small file of its own (`/layers/NNN.txt`). */
async function pushManyLayers(stack: Stack, hostPort: string, n: number): Promise<{ ref: string; diffIds: string[] }> {
  const repo = `${hostPort}/clip-bench/many-layers`;
  const client = new RegistryClient({ plainHttp: true });
  try {
    const pushed: Array<{ digest: string; size: number }> = [];
    const diffIds: string[] = [];
    for (let i = 0; i < n; i++) {
      const dir = join(stack.root, 'many-layers', String(i));
      mkdirSync(join(dir, 'layers'), { recursive: true });
      writeFileSync(join(dir, 'layers', `${String(i).padStart(3, '0')}.txt`), `layer ${i}\n`.repeat(64));
      const tarPath = `${dir}.tar`;
      await packLayer(dir, tarPath);
      const tar = readFileSync(tarPath);
      diffIds.push(sha256(tar));
      pushed.push(await client.pushBlob(repo, { type: 'bytes', data: gzipSync(tar) }));
    }
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds },
    }));
    const cfg = await client.pushBlob(repo, { type: 'bytes', data: config });
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA_MANIFEST,
      config: { mediaType: MEDIA_CONFIG, digest: cfg.digest, size: cfg.size },
      layers: pushed.map((p) => ({ mediaType: MEDIA_LAYER_GZIP, digest: p.digest, size: p.size })),
    }));
    await client.pushManifest(repo, manifest, MEDIA_MANIFEST, 'latest');
    return { ref: `${repo}:latest`, diffIds };
  } finally {
    await client.close();
  }
}

/** `/proc/<pid>/status` fields in MB (threads as a count): where the resident memory is. */
function statusOf(pid: number | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (pid === undefined) return out;
  try {
    for (const m of readFileSync(`/proc/${pid}/status`, 'utf8').matchAll(/^(RssAnon|RssFile|Threads):\s+(\d+)/gm)) {
      out[m[1]!] = m[1] === 'Threads' ? Number(m[2]) : Number(m[2]) / 1e3;
    }
  } catch {
    // gone
  }
  return out;
}

/** The RSS of the daemon and of its FUSE server, in MB, with their status breakdowns. */
function sample(node: ClipNode): { daemon: number; fuse: number; daemonStatus: Record<string, number>; fuseStatus: Record<string, number> } {
  return {
    daemon: rssBytes(node.snapshotter.pid()) / 1e6, fuse: rssBytes(node.snapshotter.fuseServerPid()) / 1e6,
    daemonStatus: statusOf(node.snapshotter.pid()), fuseStatus: statusOf(node.snapshotter.fuseServerPid()),
  };
}

interface DriverRun {
  driver: string;
  idle: ReturnType<typeof sample>;
  pulled: ReturnType<typeof sample>;
  read: ReturnType<typeof sample>;
  mountsAfterPull: number;
  mountsAfterRead: number;
  pull: { lazy: number; full: number };
}

/** One node with `driver`: idle, after the pull, after reading a file of every layer. */
async function measure(stack: Stack, registryHost: string, image: { ref: string; diffIds: string[] }, layers: number, driver: string, log: (s: string) => void): Promise<DriverRun> {
  const name = `memory-${driver}`;
  const dir = join(stack.root, name);
  mkdirSync(dir, { recursive: true });
  const containerdAddress = join(stack.root, `${name}-containerd`, 'containerd.sock');
  const configPath = join(dir, 'clip-config.toml');
  // The default split mode: the daemon and a FUSE server; completed layers stay on FUSE so the
  // mounts are what is measured.
  writeFileSync(configPath, daemonConfigToml({ containerdAddress, redisAddresses: [], extraToml: `[cache]\nextract_completed = false\n[fuse_server]\ndriver = "${driver}"\n` }));
  const snapshotter = await stack.snapshotter(`${name}-clip`, ['--config', configPath]);
  const containerd = await stack.containerd(`${name}-containerd`, { clip: snapshotter.address }, [registryHost]);
  const node: ClipNode = { name, containerd, snapshotter, configPath };
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const idle = sample(node);
    const pull = await clipPull(node, image.ref, { requireBundle: true });
    if (pull.lazy !== layers) throw new Error(`${driver}: ${pull.lazy} of ${layers} layers pulled lazily`);
    const fuseMounts = (): number => mountsUnder(snapshotter.root).filter((m) => m.fsType.startsWith('fuse')).length;
    await new Promise((r) => setTimeout(r, 2000));
    const pulled = sample(node);
    const mountsAfterPull = fuseMounts();
    // Read one file of every layer through the lower dirs a View of the top layer hands out (what a
    // container's overlay would read; the overlay itself is left out: mount(8) cuts 200 lower dirs
    // at a page, containerd shortens them to relative paths first).
    const ctr = (args: string[]) => runCommand('ctr', ['--address', containerd.address, '--namespace', TEST_NAMESPACE, ...args], { timeoutMs: 300_000 });
    let chain = '';
    for (const [i, d] of image.diffIds.entries()) chain = i === 0 ? d : sha256(Buffer.from(`${chain} ${d}`));
    const view = await ctr(['snapshots', '--snapshotter', 'clip', 'view', '--mounts', 'memory-view', chain]);
    // containerd's mount.Mount as Go marshals it (capitalised fields).
    const m = (JSON.parse(view.stdout) as Array<{ Options: string[] | null }>)[0];
    const lowers = m?.Options?.find((x) => x.startsWith('lowerdir='))?.slice('lowerdir='.length).split(':') ?? [];
    if (lowers.length !== layers) throw new Error(`the View has ${lowers.length} lower dirs, not ${layers}`);
    let bad = 0;
    // Lower dirs are listed top first.
    for (const [j, lower] of lowers.entries()) {
      const i = layers - 1 - j;
      const text = readFileSync(join(lower, 'layers', `${String(i).padStart(3, '0')}.txt`), 'utf8');
      if (text !== `layer ${i}\n`.repeat(64)) bad++;
    }
    await ctr(['snapshots', '--snapshotter', 'clip', 'rm', 'memory-view']);
    if (bad > 0) throw new Error(`${bad} of ${layers} layer files read wrong`);
    const read = sample(node);
    log(`${driver}: idle ${idle.daemon.toFixed(1)} MB; ${layers} layers read: daemon ${read.daemon.toFixed(1)} MB ${JSON.stringify(read.daemonStatus)}, FUSE server ${read.fuse.toFixed(1)} MB ${JSON.stringify(read.fuseStatus)}`);
    return { driver, idle, pulled, read, mountsAfterPull, mountsAfterRead: fuseMounts(), pull };
  } finally {
    await containerd.stop();
    await snapshotter.stop();
  }
}

export async function memoryEntry(stack: Stack, o: MemoryOptions, log: (s: string) => void): Promise<BenchEntry> {
  const registry = await stack.registry('memory-registry');
  log(`pushing an image of ${o.layers} small layers`);
  const image = await pushManyLayers(stack, registry.host, o.layers);
  const runs: DriverRun[] = [];
  for (const driver of ['libfuse', 'kernel']) runs.push(await measure(stack, registry.host, image, o.layers, driver, log));

  const e = newEntry('memory', `Daemon memory: idle, and with an image of ${o.layers} lazy layers mounted (split mode: daemon + FUSE server)`,
    ['FUSE driver', 'state', 'daemon RSS (MB)', 'FUSE server RSS (MB)', 'total (MB)', 'FUSE server threads', 'FUSE mounts', 'goal']);
  const total = (s: { daemon: number; fuse: number }): number => s.daemon + (Number.isNaN(s.fuse) ? 0 : s.fuse);
  const fmt = (v: number): string | number => (Number.isNaN(v) ? '—' : Math.round(v * 10) / 10);
  const goal = o.layers >= 200 ? '≤ 100 MB' : '';
  for (const r of runs) {
    e.rows.push([r.driver, 'idle (no lazy layer yet)', fmt(r.idle.daemon), fmt(r.idle.fuse), fmt(total(r.idle)), r.idle.fuseStatus['Threads'] ?? '—', 0, '']);
    e.rows.push([r.driver, `${o.layers} layers pulled lazily`, fmt(r.pulled.daemon), fmt(r.pulled.fuse), fmt(total(r.pulled)), r.pulled.fuseStatus['Threads'] ?? '—', r.mountsAfterPull, goal]);
    e.rows.push([r.driver, '… and one file of each read', fmt(r.read.daemon), fmt(r.read.fuse), fmt(total(r.read)), r.read.fuseStatus['Threads'] ?? '—', r.mountsAfterRead, goal]);
  }
  e.notes.push('Pulled with `clip-snapshotter pull` from a loopback registry; then one file of each layer read through the lower dirs of a View of the top layer (each a FUSE mount). RSS (VmRSS) sampled 2 s after each step; the daemon starts its FUSE server as it starts (`[fuse_server] start = "with_daemon"`, the default; with "first_mount" the idle row has no FUSE server). Drivers: `[fuse_server] driver` (libfuse = fuse-native, a libfuse thread pool per mount; kernel = the project\'s own /dev/fuse driver, no thread per mount).');
  e.raw = { layers: o.layers, runs };
  return e;
}
