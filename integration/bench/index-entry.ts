/** (b) Clip index: build throughput vs `gzip -dc | tar -t`, size %, decode + 10k lookups (index-bench.js). */
import { runNodeScript } from './proc-util.js';
import { formatSpread, round, spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';

type IndexBenchLine = Record<string, number | string>;

/** Run index-bench `rounds` times on `sourceDir` (a tree tarred into one gzip layer, ≤ 300 MB). */
export async function indexEntry(opts: { sourceDir: string; rounds: number }): Promise<BenchEntry> {
  const e = newEntry('index', 'Clip index: build rate, size and lookups', ['measure', 'clip', 'baseline', 'ratio']);
  const lines: IndexBenchLine[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    const r = await runNodeScript('build/integration/bench/index-bench.js', [opts.sourceDir], { timeoutMs: 900_000 });
    lines.push(JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as IndexBenchLine);
  }
  const s = (k: string): ReturnType<typeof spread> => spread(lines.map((l) => Number(l[k])));
  const first = lines[0] ?? {};
  const layerMb = Number(first.layer_bytes) / 1e6;
  const buildMs = s('build_ms');
  const floorMs = s('gzip_tar_t_ms');
  const mbps = (ms: ReturnType<typeof spread>): ReturnType<typeof spread> => ({ median: layerMb / (ms.median / 1000), min: layerMb / (ms.max / 1000), max: layerMb / (ms.min / 1000), n: ms.n });
  e.rows.push(
    ['build throughput (MB/s of uncompressed tar)', formatSpread(mbps(buildMs), 0), `${formatSpread(mbps(floorMs), 0)} (gzip -dc | tar -t)`, `${round(buildMs.median / floorMs.median, 2)}× the time`],
    ['index size (% of uncompressed layer; goal ≤ 0.5%)', `${first.index_pct_of_layer}% (${first.index_bytes} B)`, `${round(layerMb, 1)} MB layer, ${first.layer_entries} entries`, null],
    [`decode ${first.synthetic_entries}-entry index (ms)`, formatSpread(s('decode_ms'), 1), null, null],
    ['10k lookups (ms)', formatSpread(s('lookups_10k_ms'), 1), null, null],
    ['10k lookups returning the entry (ms)', formatSpread(s('lookups_10k_with_entry_ms'), 1), null, null],
  );
  e.charts.push({
    title: `Index build throughput (MB/s), ${round(layerMb, 0)} MB layer`, lowerIsBetter: false,
    bars: [{ label: 'clip buildIndex', value: mbps(buildMs).median, unit: 'MB/s' }, { label: 'gzip -dc | tar -t', value: mbps(floorMs).median, unit: 'MB/s', baseline: true }],
  });
  e.notes.push(`layer: ${opts.sourceDir} tarred (pax) and gzipped, ${opts.rounds} round(s); the floor is the same layer through gzip -dc | tar -t.`);
  e.raw.runs = lines;
  return e;
}
