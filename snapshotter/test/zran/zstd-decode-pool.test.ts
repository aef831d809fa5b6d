import { execFileSync } from 'node:child_process';
import t from 'tap';
import { decodeZstdOffThread } from '../../src/zran/zstd-decode-pool.js';
import { sampleData } from './fixtures.js';

t.test('frames decode on the worker, concurrently, each to its own bytes', async (t) => {
  const inputs = Array.from({ length: 12 }, (_, i) => sampleData(256 * 1024 + i * 4099, i + 1));
  const frames = inputs.map((d) => execFileSync('zstd', ['-q', '-c', '-3'], { input: d, maxBuffer: 1 << 28 }));
  const outs = await Promise.all(frames.map((f) => decodeZstdOffThread(f)));
  outs.forEach((o, i) => t.ok(Buffer.from(o).equals(inputs[i]!), `frame ${i}`));
  t.ok(frames[0]!.length > 0, 'inputs are still usable after the call (a copy was transferred)');
});

t.test('bytes that are not zstd reject; the worker keeps serving', async (t) => {
  await t.rejects(decodeZstdOffThread(Buffer.from('definitely not a zstd frame')));
  const d = sampleData(70_000, 9);
  const out = await decodeZstdOffThread(execFileSync('zstd', ['-q', '-c'], { input: d }));
  t.ok(Buffer.from(out).equals(d));
});
