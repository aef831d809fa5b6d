/** Layers for the zran tests: compressible-but-varied data, compressed by several real tools. */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Test } from 'tap';
import type { ClipIndexReader } from '../../src/clip/index.js';
import type { RangeFetcher, SparseLayer } from '../../src/storage/index.js';
import { CheckpointBuilder, decodeCheckpointTable, encodeCheckpointTable, type GzipCheckpointTable } from '../../src/zran/index.js';

/** Deterministic data mixing text runs (long matches), random bytes (stored blocks) and zeros. */
export function sampleData(bytes: number, seed = 1): Buffer {
  const out = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
  const words = ['usr/lib/python3', 'import os\n', 'def main():\n    return 0\n', '\0\0\0\0\0\0\0\0', 'GNU tar ', 'lorem ipsum '];
  let at = 0;
  while (at < bytes) {
    const kind = rnd() % 4;
    const len = Math.min(bytes - at, 512 + (rnd() % 65536));
    if (kind === 0) for (let i = 0; i < len; i++) out[at + i] = rnd() & 0xff;
    else if (kind === 1) out.fill(0, at, at + len);
    else {
      let i = 0;
      while (i < len) {
        const w = words[rnd() % words.length] as string;
        i += out.write(w, at + i, Math.min(w.length, len - i), 'latin1');
      }
    }
    at += len;
  }
  return out;
}

const tool = (cmd: string, args: string[]) => (data: Buffer): Buffer => execFileSync(cmd, args, { input: data, maxBuffer: 1 << 30 });

/** gzip streams of the same data by different compressors (multi-member included). */
export const COMPRESSORS: Record<string, (data: Buffer) => Buffer> = {
  'gzip -1': tool('gzip', ['-1', '-c', '-n']),
  'gzip -9': tool('gzip', ['-9', '-c', '-n']),
  pigz: tool('pigz', ['-c', '-p', '4']),
  'pigz --independent': tool('pigz', ['-c', '-i', '-p', '4']),
  'python gzip': tool('python3', ['-c', 'import gzip,sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read(), 6))']),
  'node zlib': (d) => gzipSync(d),
  'multi-member': (d) => {
    const cut = [Math.floor(d.length / 3), Math.floor((2 * d.length) / 3)];
    return Buffer.concat([gzipSync(d.subarray(0, cut[0])), tool('gzip', ['-1', '-c'])(d.subarray(cut[0], cut[1])), gzipSync(d.subarray(cut[1]))]);
  },
};

/** Build a checkpoint table by streaming `blob` in `chunk`-byte pieces, through encode/decode. */
export function buildTable(blob: Buffer, spanBytes: number, chunk = 65536): GzipCheckpointTable {
  const b = new CheckpointBuilder({ spanBytes, minLayerBytes: 0 });
  for (let i = 0; i < blob.length; i += chunk) b.push(blob.subarray(i, i + chunk));
  const table = b.finish();
  if (!table) throw new Error('no checkpoint table');
  return decodeCheckpointTable(encodeCheckpointTable(table));
}

/** A temp dir removed at teardown. */
export async function zranTempDir(t: { teardown(fn: () => Promise<void>): void }, prefix = 'clip-zran-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return dir;
}

/** An in-memory "registry" serving ranges of `blob`, recording every request. */
export function memoryFetcher(blob: Buffer, requests: Array<[number, number]> = []): RangeFetcher {
  return async (start, end) => {
    requests.push([start, end]);
    await new Promise((r) => setImmediate(r));
    return Buffer.from(blob.subarray(start, end));
  };
}

/** A real tar (GNU tar) of six 2 MiB files and a small text file `lastName` at the end. */
export async function makeGnuTar(
  t: { teardown(fn: () => Promise<void>): void }, lastName: string, seed: number,
): Promise<{ tar: Buffer; files: Map<string, Buffer>; dir: string }> {
  const dir = await zranTempDir(t, 'clip-zran-tar-');
  const root = join(dir, 'root');
  await mkdir(join(root, 'usr', 'lib'), { recursive: true });
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 6; i++) files.set(`usr/lib/blob${i}.bin`, sampleData(2 * 1024 * 1024 + i * 777, i + seed));
  files.set(`usr/lib/${lastName}`, Buffer.from('the file a container reads first\n'.repeat(100)));
  for (const [p, data] of files) await writeFile(join(root, p), data);
  const tar = execFileSync('tar', ['-C', root, '--sort=name', '-cf', '-', '.'], { maxBuffer: 1 << 30 });
  return { tar, files, dir };
}

/** Read every file of `files` through `layer` at the offsets the index gives; each must be byte-exact. */
export async function expectFilesExact(
  t: Test, reader: Pick<ClipIndexReader, 'lookup'>, layer: SparseLayer, files: Map<string, Buffer>,
): Promise<void> {
  for (const [p, data] of files) {
    const e = reader.lookup(p);
    if (e?.type !== 'file') {
      t.fail(`no file ${p}`);
      continue;
    }
    const buf = Buffer.alloc(e.size);
    await layer.read(buf, 0, e.size, e.dataOffset, AbortSignal.timeout(10_000));
    t.ok(buf.equals(data), `${p} byte-exact`);
  }
}
