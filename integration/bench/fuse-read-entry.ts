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

async function readOnce(path: string, mode: 'seq' | 'rand', block: number, count: number): Promise<number> {
  const r = await runNodeScript(WORKER, [path, mode, String(block), String(count)], { timeoutMs: 600_000 });
  const { bytes, ms } = JSON.parse(r.stdout) as { bytes: number; ms: number };
  return bytes / 1e6 / (ms / 1000);
}

/** Mount the layer afresh (nothing in the FUSE page cache), or reuse one mount. */
type Mounter = () => Promise<string>;

const DRIVERS: readonly FuseDriver[] = ['kernel', 'libfuse'];

export async function fuseReadEntry(stack: Stack, opts: { fileMb: number; runs: number; randomReads: number }): Promise<BenchEntry> {
  const e = newEntry('fuse-read', 'Read throughput of a cached file: FUSE layer mount vs native disk (MB/s)', ['driver', 'read', 'FUSE', 'native disk', 'FUSE / native']);
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
  const measure = async (target: string | Mounter, mode: 'seq' | 'rand', block: number): Promise<Spread> => {
    const vals: number[] = [];
    for (let i = 0; i < opts.runs; i++) vals.push(await readOnce(typeof target === 'string' ? target : await target(), mode, block, opts.randomReads));
    return spread(vals);
  };
  const rows: Array<[FuseDriver, string, Spread, Spread]> = [];
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
    readerCalls[driver] = { firstPass, secondPass, perRandomRun: Math.round((reader.requests - beforeRandom) / opts.runs) };
    rows.push(
      [driver, 'sequential 1 MiB, first open (fresh mount)', await measure(fresh, 'seq', 1 << 20), await measure(native, 'seq', 1 << 20)],
      [driver, 'sequential 1 MiB, reopened (kernel page cache kept)', await measure(reused, 'seq', 1 << 20), await measure(native, 'seq', 1 << 20)],
      [driver, `random 4 KiB × ${opts.randomReads}, first open (fresh mount)`, random, await measure(native, 'rand', 4096)],
    );
  }
  for (const [driver, label, f, n] of rows) e.rows.push([driver, label, formatSpread(f, 0), formatSpread(n, 0), `${(f.median / n.median).toFixed(2)}`]);
  e.charts.push({
    title: 'Read throughput, cached file (MB/s)', lowerIsBetter: false,
    bars: rows.flatMap(([driver, label, f, n]) => [{ label: `${driver} ${label.split(',')[0]} FUSE`, value: f.median, unit: 'MB/s' }, { label: `${driver} ${label.split(',')[0]} native`, value: n.median, unit: 'MB/s', baseline: true }]),
  });
  e.notes.push(`${opts.fileMb} MiB random file; the layer tar (the disk cache file) and the native file are both in the page cache, so this isolates the FUSE path. Reads from a child process; ${opts.runs} runs each, native measured right after its FUSE row.`);
  for (const [driver, c] of Object.entries(readerCalls)) {
    e.notes.push(`${driver}: FUSE read requests for one mount: first sequential pass ${c.firstPass}, second pass ${c.secondPass} (kernel page cache reuse); per random run ${c.perRandomRun} (${opts.randomReads} reads).`);
  }
  e.raw = { rows: rows.map(([driver, label, f, n]) => ({ driver, label, fuse: f, native: n })), mounts, readerCalls };
  return e;
}
