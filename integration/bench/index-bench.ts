/**
 * Clip index benchmark. Prints one JSON line:
 *   - build throughput (MB/s of uncompressed tar) on a gzip layer vs `gzip -dc LAYER | tar -t`;
 *   - index size as a percentage of the uncompressed layer (goal ≤ 0.5%);
 *   - decode time and 10k lookups on a 100k-entry index.
 * Usage: node build/integration/bench/index-bench.js [SOURCE_DIR]   (default /usr/lib, ~300 MB cap)
 */
import { execFileSync, execSync } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildIndex, decodeIndex, encodeIndex, type ClipIndex } from '../../snapshotter/src/clip/index.js';
import { EntryTable } from '../../snapshotter/src/clip/entry-table.js';

const ms = (t0: number): number => Math.round((performance.now() - t0) * 10) / 10;

/** Tar ~300 MB of a real directory (pax) and gzip it; returns the tar's path. */
function makeLayer(dir: string, source: string, capBytes = 300e6): string {
  const found = execFileSync('find', ['.', '-xdev', '(', '-type', 'f', '-o', '-type', 'l', ')', '-printf', '%s\t%p\n'], { cwd: source, encoding: 'utf8', maxBuffer: 1 << 28 });
  const picked: string[] = [];
  let total = 0;
  for (const line of found.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    total += Number(line.slice(0, tab)) + 512;
    if (total > capBytes) break;
    picked.push(line.slice(tab + 1));
  }
  const list = join(dir, 'files');
  writeFileSync(list, picked.join('\n') + '\n');
  const tarPath = join(dir, 'layer.tar');
  execFileSync('tar', ['--format=pax', '-cf', tarPath, '-C', source, '-T', list]);
  execFileSync('gzip', ['-k', '-f', tarPath]);
  return tarPath;
}

async function buildBench(tarPath: string): Promise<Record<string, number>> {
  const gz = `${tarPath}.gz`;
  const t0 = performance.now();
  execSync(`gzip -dc ${gz} | tar -t > /dev/null`);
  const floorMs = ms(t0);
  const t1 = performance.now();
  const idx = await buildIndex(createReadStream(gz, { highWaterMark: 1 << 20 }));
  const buildMs = ms(t1);
  const encoded = encodeIndex(idx);
  const size = idx.meta.uncompressedSize;
  return {
    layer_bytes: size,
    layer_entries: idx.meta.entryCount,
    build_ms: buildMs,
    build_mb_per_s: Math.round(size / 1e6 / (buildMs / 1000)),
    gzip_tar_t_ms: floorMs,
    build_vs_floor: Math.round((buildMs / floorMs) * 100) / 100,
    index_bytes: encoded.length,
    index_pct_of_layer: Math.round((encoded.length / size) * 1e5) / 1e3,
  };
}

function synthetic(n: number): ClipIndex {
  const table = new EntryTable();
  for (let i = 0; i < n; i++) {
    table.add({
      name: `usr/lib/pkg${i % 2000}/sub${i % 7}/file-${i}.so`, linkname: '', typeflag: '0', mode: 0o644, uid: 0, gid: 0,
      uname: 'root', gname: 'root', mtimeSec: 1700000000, mtimeNsec: 0, size: 4096, devMajor: 0, devMinor: 0, xattrs: [],
      headerOffset: i * 5120, dataOffset: i * 5120 + 512,
    });
  }
  const entries = table.finish();
  return { meta: { diffId: 'sha256:0', compressedDigest: 'sha256:0', compression: 'gzip', uncompressedSize: n * 5120 + 1024, entryCount: entries.length }, entries };
}

function lookupBench(): Record<string, number> {
  const n = 100_000;
  const encoded = encodeIndex(synthetic(n));
  const t0 = performance.now();
  const r = decodeIndex(encoded);
  const decodeMs = ms(t0);
  const queries = Array.from({ length: 10_000 }, (_, k) => {
    const i = (k * 7919) % n;
    return `usr/lib/pkg${i % 2000}/sub${i % 7}/file-${i}.so`;
  });
  const t1 = performance.now();
  let hits = 0;
  for (const q of queries) if (r.indexOf(q) >= 0) hits++;
  const lookupMs = ms(t1);
  const t2 = performance.now();
  for (const q of queries) r.lookup(q);
  const lookupEntryMs = ms(t2);
  if (hits !== queries.length) throw new Error(`only ${hits} of ${queries.length} lookups hit`);
  return { synthetic_entries: r.entryCount, synthetic_index_bytes: encoded.length, decode_ms: decodeMs, lookups_10k_ms: lookupMs, lookups_10k_with_entry_ms: lookupEntryMs };
}

const dir = mkdtempSync(join(tmpdir(), 'clip-bench-'));
try {
  const tarPath = makeLayer(dir, process.argv[2] ?? '/usr/lib');
  const build = await buildBench(tarPath);
  const lookups = lookupBench();
  console.log(JSON.stringify({ bench: 'clip-index', tar_bytes: statSync(tarPath).size, ...build, ...lookups }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
