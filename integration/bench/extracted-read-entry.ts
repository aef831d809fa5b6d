/**
 * Reads in a container started after its lazy layers completed (issue 14): its rootfs overlay has
 * the extracted layers as plain lower dirs, so a file read through it should cost what the same
 * file costs on native disk. Sequential (1 MiB) and random 4 KiB reads of one file through the
 * container's rootfs mount against a copy of it on the same filesystem, page cache warm (both
 * sides), plus sequential reads with the page cache dropped before each run (both sides).
 * A third target, a plain overlayfs mount over the native copy's directory, shows what the overlay
 * itself costs per read — what any overlay rootfs pays, containerd's overlayfs snapshotter's too.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stack } from '../harness/stack.js';
import { clipPull, startNode } from '../harness/stack-node.js';
import { mountsUnder } from '../harness/mounts.js';
import { extractedDirOf } from '../harness/extracted-dirs.js';
import { addBusyboxRootfs, buildImage, pushImage, type StagingTree } from '../images/index.js';
import { runNodeScript } from './proc-util.js';
import { formatSpread, spread, type Spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';

const WORKER = 'build/integration/bench/read-worker.js';
const FILE = 'data/big.bin';

async function readOnce(path: string, mode: 'seq' | 'rand', block: number, count: number, passes = 1): Promise<number> {
  const r = await runNodeScript(WORKER, [path, mode, String(block), String(count), String(passes)], { timeoutMs: 600_000 });
  const { bytes, ms } = JSON.parse(r.stdout) as { bytes: number; ms: number };
  return bytes / 1e6 / (ms / 1000);
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The container's rootfs mount point and its overlay lower dirs, from /proc/self/mountinfo. */
function rootfsOf(id: string): { rootfs: string; lowers: string[] } {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    const mp = unescape(f[4] ?? '');
    if (sep < 0 || f[sep + 1] !== 'overlay' || !mp.endsWith(`/${id}/rootfs`)) continue;
    const lower = (f[sep + 3] ?? '').split(',').find((o) => o.startsWith('lowerdir=')) ?? 'lowerdir=';
    return { rootfs: mp, lowers: unescape(lower.slice('lowerdir='.length)).split(':') };
  }
  throw new Error(`no overlay rootfs mount for container ${id}`);
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function extractedReadEntry(stack: Stack, opts: { fileMb: number; runs: number; randomReads: number; warmPasses: number }, log: (m: string) => void): Promise<BenchEntry> {
  const e = newEntry('extracted-read', 'Reads in a container started after its lazy layers completed vs native disk (MB/s)', ['read', 'container rootfs (extracted lower dirs)', 'native disk', 'plain overlayfs over the native copy', 'container / native', 'container / plain overlayfs']);
  const registry = await stack.registry('xr-registry');
  const data = randomBytes(opts.fileMb << 20);
  const built = await buildImage({
    name: `bench-extracted-${opts.fileMb}m`,
    layers: [addBusyboxRootfs, async (t: StagingTree) => void t.file(FILE, data)],
    config: { cmd: ['/bin/sh'] },
  }, join(stack.root, 'images'));
  const image = await pushImage(built, registry, join(stack.root, 'images'));
  const node = await startNode(stack, 'xr', [registry.hostPort], { redisAddresses: [], tracingEndpoint: '', metricsAddress: '' });
  const pull = await clipPull(node, image.ref, { requireBundle: true });
  log(`extracted-read: pulled ${pull.lazy} layers lazily, ${pull.full} fully`);
  const dirOf = (diffId: string): string => extractedDirOf(node.snapshotter.root, diffId);
  // The daemon indexes the layers from the stream, keeps them, and extracts each once mounted.
  await until('every layer extracted', () => image.layers.every((l) => existsSync(join(dirOf(l.diffId), 'record.json'))), 600_000);
  const c = node.containerd;
  await c.ctr(['run', '-d', '--snapshotter', 'clip', ...c.runcArgs(), image.ref, 'xr-late', 'sleep', '3600']);
  stack.add('xr-late container', async () => {
    await c.ctr(['task', 'kill', '-s', 'SIGKILL', 'xr-late'], { allowFailure: true });
  });
  const { rootfs, lowers } = rootfsOf('xr-late');
  const fuse = new Set(mountsUnder(node.snapshotter.root).filter((m) => m.fsType === 'fuse.clip').map((m) => m.mountPoint));
  const fuseLowers = lowers.filter((d) => fuse.has(d));
  if (fuseLowers.length > 0) throw new Error(`the container's lower dirs include FUSE mounts: ${fuseLowers.join(', ')}`);
  const inContainer = join(rootfs, FILE);
  const native = join(stack.root, 'xr-native', 'big.bin');
  await mkdir(join(stack.root, 'xr-native'), { recursive: true });
  await copyFile(join(dirOf(image.layers.at(-1)!.diffId), 'root', FILE), native);
  const ovl = join(stack.root, 'xr-ovl');
  for (const d of ['upper', 'work', 'merged']) await mkdir(join(ovl, d), { recursive: true });
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${join(stack.root, 'xr-native')},upperdir=${join(ovl, 'upper')},workdir=${join(ovl, 'work')}`, join(ovl, 'merged')]);
  stack.add('xr plain overlay', async () => void execFileSync('umount', [join(ovl, 'merged')]));
  const overlaid = join(ovl, 'merged', 'big.bin');

  const dropCaches = (): Promise<void> => writeFile('/proc/sys/vm/drop_caches', '3');
  // Alternating runs, so drift on a shared machine hits both sides alike.
  const measure = async (mode: 'seq' | 'rand', block: number, cold: boolean): Promise<[Spread, Spread, Spread]> => {
    const a: number[] = [];
    const b: number[] = [];
    const o: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      // Warm: several passes per sample, so one lasts long enough to time on a busy machine.
      const passes = cold ? 1 : opts.warmPasses;
      if (cold) await dropCaches();
      a.push(await readOnce(inContainer, mode, block, opts.randomReads, passes));
      if (cold) await dropCaches();
      b.push(await readOnce(native, mode, block, opts.randomReads, passes));
      if (cold) await dropCaches();
      o.push(await readOnce(overlaid, mode, block, opts.randomReads, passes));
    }
    return [spread(a), spread(b), spread(o)];
  };
  await readOnce(inContainer, 'seq', 1 << 20, 0);
  await readOnce(native, 'seq', 1 << 20, 0);
  await readOnce(overlaid, 'seq', 1 << 20, 0);
  const rows: Array<[string, Spread, Spread, Spread]> = [
    ['sequential 1 MiB, page cache warm', ...(await measure('seq', 1 << 20, false))],
    [`random 4 KiB × ${opts.randomReads}, page cache warm`, ...(await measure('rand', 4096, false))],
    ['sequential 1 MiB, page cache dropped', ...(await measure('seq', 1 << 20, true))],
    [`random 4 KiB × ${opts.randomReads}, page cache dropped`, ...(await measure('rand', 4096, true))],
  ];
  for (const [label, x, n, v] of rows) e.rows.push([label, formatSpread(x, 0), formatSpread(n, 0), formatSpread(v, 0), `${(x.median / n.median).toFixed(3)}`, `${(x.median / v.median).toFixed(3)}`]);
  e.charts.push({
    title: 'Container started after completion vs native disk (MB/s)', lowerIsBetter: false,
    bars: rows.flatMap(([label, x, n]) => [{ label: `${label} container`, value: x.median, unit: 'MB/s' }, { label: `${label} native`, value: n.median, unit: 'MB/s', baseline: true }]),
  });
  e.notes.push(`${opts.fileMb} MiB random file in the image's second layer, read through the running container's rootfs overlay (its ${lowers.length} lower dirs are extracted layers under <root>/cache/extracted, none a FUSE mount) and from a copy on the same filesystem; a child process reads; ${opts.runs} runs each, alternating; warm samples are ${opts.warmPasses} passes each. Target: within 5 % of native. The plain overlayfs column reads the native copy through an overlay mount of its own directory (lower = that directory, an empty upper): the per-read cost of overlayfs itself, which a container on containerd's overlayfs snapshotter pays as well. The machine is shared: compare the spreads, not only the medians.`);
  e.raw = { rows: rows.map(([label, x, n, v]) => ({ label, container: x, native: n, plainOverlay: v })), lowers };
  return e;
}
