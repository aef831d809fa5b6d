/**
 * (c) Read throughput of a cached file through a FUSE layer mount vs the same file on native disk,
 * sequential (1 MiB) and random 4 KiB, for each FUSE driver (the kernel driver, the FUSE server's
 * default, first). This process serves FUSE; a child does all the reading.
 */
import { createReadStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildIndex, decodeIndex, encodeIndex } from '../../snapshotter/src/clip/index.js';
import { LayerFilesystem, type FuseDriver } from '../../snapshotter/src/fuse/index.js';
import type { Stack } from '../harness/stack.js';
import { FileLayerReader } from '../fuse/file-layer-reader.js';
import { runCommand } from '../harness/run-command.js';
import { runNodeScript } from './proc-util.js';
import { formatSpread, spread, type Spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';

const WORKER = 'build/integration/bench/read-worker.js';

/** Bytes the last readOnce read, and this process's CPU time (µs) during it: the FUSE server's cost. */
let lastRead = { bytes: 0, cpuUs: 0 };

async function readOnce(path: string, mode: 'seq' | 'rand', block: number, count: number): Promise<number> {
  const cpu = process.cpuUsage();
  const r = await runNodeScript(WORKER, [path, mode, String(block), String(count)], { timeoutMs: 600_000 });
  const used = process.cpuUsage(cpu);
  const { bytes, ms } = JSON.parse(r.stdout) as { bytes: number; ms: number };
  lastRead = { bytes, cpuUs: used.user + used.system };
  return bytes / 1e6 / (ms / 1000);
}

/** Mount the layer afresh (nothing in the FUSE page cache), or reuse one mount. */
type Mounter = () => Promise<string>;

const DRIVERS: readonly FuseDriver[] = ['kernel', 'libfuse'];

export async function fuseReadEntry(stack: Stack, opts: { fileMb: number; runs: number; randomReads: number }): Promise<BenchEntry> {
  const e = newEntry('fuse-read', 'Read throughput of a cached file: FUSE layer mount vs native disk (MB/s)', ['driver', 'read', 'FUSE', 'native disk', 'FUSE / native', 'server CPU (ms per GiB)']);
  const dir = join(stack.root, 'fuse-read');
  await mkdir(join(dir, 'src'), { recursive: true });
  await runCommand('sh', ['-c', `head -c ${opts.fileMb * 1048576} /dev/urandom > '${dir}/src/big.bin'`], { timeoutMs: 300_000 });
  await runCommand('tar', ['--format=posix', '-cf', join(dir, 'layer.tar'), '-C', join(dir, 'src'), '.'], { timeoutMs: 300_000 });
  const view = decodeIndex(encodeIndex(await buildIndex(createReadStream(join(dir, 'layer.tar')))));
  const reader = await FileLayerReader.open(join(dir, 'layer.tar'), view.meta.diffId);
  stack.add('fuse-read reader', () => reader.close());
  let mounts = 0;
  const native = join(dir, 'src', 'big.bin');
  await readOnce(native, 'seq', 1 << 20, 0); // page cache warm: both sides read a cached layer
  await readOnce(join(dir, 'layer.tar'), 'seq', 1 << 20, 0);
  /** Server CPU per GiB of the last `measure` (median of its runs). */
  let cpuPerGib = 0;
  const measure = async (target: string | Mounter, mode: 'seq' | 'rand', block: number): Promise<Spread> => {
    const vals: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      vals.push(await readOnce(typeof target === 'string' ? target : await target(), mode, block, opts.randomReads));
      cpu.push(lastRead.cpuUs / 1000 / (lastRead.bytes / 2 ** 30));
    }
    cpuPerGib = spread(cpu).median;
    return spread(vals);
  };
  const rows: Array<[FuseDriver, string, Spread, Spread, number]> = [];
  const readerCalls: Record<string, { firstPass: number; secondPass: number; perRandomRun: number }> = {};
  for (const driver of DRIVERS) {
    const fresh: Mounter = async () => {
      const mnt = join(dir, `mnt-${mounts++}`);
      await mkdir(mnt);
      const fs = new LayerFilesystem({ view, reader, driver });
      await fs.mount(mnt);
      stack.add(`fuse mount ${mnt}`, () => fs.unmount());
      return join(mnt, 'big.bin');
    };
    const reused = await fresh();
    // Reader calls of a first and a second sequential pass through one mount: the second is served
    // by the kernel's page cache (keep_cache), so it should cost (almost) no FUSE reads.
    const callsBefore = reader.requests;
    await readOnce(reused, 'seq', 1 << 20, 0);
    const firstPass = reader.requests - callsBefore;
    await readOnce(reused, 'seq', 1 << 20, 0);
    const secondPass = reader.requests - callsBefore - firstPass;
    const beforeRandom = reader.requests;
    const random = await measure(fresh, 'rand', 4096);
    const randomCpu = cpuPerGib;
    readerCalls[driver] = { firstPass, secondPass, perRandomRun: Math.round((reader.requests - beforeRandom) / opts.runs) };
    const row = async (label: string, fuse: Spread | (() => Promise<Spread>), native: () => Promise<Spread>): Promise<void> => {
      const f = typeof fuse === 'function' ? await fuse() : fuse;
      const cpu = typeof fuse === 'function' ? cpuPerGib : randomCpu;
      rows.push([driver, label, f, await native(), cpu]);
    };
    await row('sequential 1 MiB, first open (fresh mount)', () => measure(fresh, 'seq', 1 << 20), () => measure(native, 'seq', 1 << 20));
    await row('sequential 1 MiB, reopened (kernel page cache kept)', () => measure(reused, 'seq', 1 << 20), () => measure(native, 'seq', 1 << 20));
    await row(`random 4 KiB × ${opts.randomReads}, first open (fresh mount)`, random, () => measure(native, 'rand', 4096));
  }
  for (const [driver, label, f, n, cpu] of rows) e.rows.push([driver, label, formatSpread(f, 0), formatSpread(n, 0), `${(f.median / n.median).toFixed(2)}`, Math.round(cpu)]);
  e.charts.push({
    title: 'Read throughput, cached file (MB/s)', lowerIsBetter: false,
    bars: rows.flatMap(([driver, label, f, n]) => [{ label: `${driver} ${label.split(',')[0]} FUSE`, value: f.median, unit: 'MB/s' }, { label: `${driver} ${label.split(',')[0]} native`, value: n.median, unit: 'MB/s', baseline: true }]),
  });
  e.notes.push(`${opts.fileMb} MiB random file; the layer tar (the disk cache file) and the native file are both in the page cache, so this isolates the FUSE path. Reads from a child process; ${opts.runs} runs each, native measured right after its FUSE row.`);
  for (const [driver, c] of Object.entries(readerCalls)) {
    e.notes.push(`${driver}: FUSE read requests for one mount: first sequential pass ${c.firstPass}, second pass ${c.secondPass} (kernel page cache reuse); per random run ${c.perRandomRun} (${opts.randomReads} reads).`);
  }
  e.notes.push('Server CPU: this process\'s user + system CPU time while the child read (it serves FUSE; the child\'s spawn is included), per GiB read, median of the runs — unlike MB/s it hardly depends on what else the machine runs.');
  e.raw = { rows: rows.map(([driver, label, f, n, cpu]) => ({ driver, label, fuse: f, native: n, serverCpuMsPerGib: cpu })), mounts, readerCalls };
  return e;
}
