import t from 'tap';
import {
  MAX_PROFILE_RANGES, RecordingLayerReader, boundRanges, coveredBytes, decodeProfile, encodeProfile, mergeRanges,
} from '../../src/prefetch/index.js';
import type { ByteRange, LayerReader } from '../../src/storage/index.js';

t.test('ranges merge across small gaps and stay sorted', async (t) => {
  t.same(mergeRanges([[200_000, 200_100], [0, 10], [5, 20], [60_000, 80_000]]), [[0, 80_000], [200_000, 200_100]]);
  t.same(mergeRanges([[0, 10], [10 + 64 * 1024 + 1, 10 + 64 * 1024 + 2]]), [[0, 10], [65_547, 65_548]]);
  t.same(mergeRanges([[5, 5], [9, 3]]), [], 'empty and inverted ranges are dropped');
  const many: ByteRange[] = Array.from({ length: 3 * MAX_PROFILE_RANGES }, (_, i) => [i * 1_000_000, i * 1_000_000 + 10]);
  const bounded = boundRanges(many);
  t.ok(bounded.length <= MAX_PROFILE_RANGES, `${bounded.length} ranges`);
  t.ok(coveredBytes(bounded) >= 10 * many.length, 'bounding only widens');
});

t.test('profiles round-trip; damaged ones are CLIP_PROFILE_CORRUPT', async (t) => {
  const ranges: ByteRange[] = [[0, 512], [1 << 20, (1 << 20) + 4096], [2 ** 33, 2 ** 33 + 1]];
  const buf = encodeProfile(ranges);
  t.same(decodeProfile(buf, 2 ** 34), ranges);
  t.throws(() => decodeProfile(buf, 2 ** 33), { code: 'CLIP_PROFILE_CORRUPT' }, 'a range past the layer end');
  t.throws(() => decodeProfile(buf.subarray(0, buf.length - 1), 2 ** 34), { code: 'CLIP_PROFILE_CORRUPT' }, 'truncated');
  const bad = Buffer.from(buf);
  bad.write('XXXX', 0);
  t.throws(() => decodeProfile(bad, 2 ** 34), { code: 'CLIP_PROFILE_CORRUPT' }, 'magic');
  t.throws(() => decodeProfile(encodeProfile([[10, 20], [5, 30]]), 100), { code: 'CLIP_PROFILE_CORRUPT' }, 'out of order');
  t.throws(() => decodeProfile(Buffer.alloc(3), 100), { code: 'CLIP_PROFILE_CORRUPT' }, 'too short');
});

/** A reader over a fixed buffer. */
function bufferReader(data: Buffer): LayerReader & { closed: boolean } {
  return {
    layer: { ref: 'r', digest: 'sha256:' + '1'.repeat(64), diffId: 'sha256:' + '2'.repeat(64), uncompressedSize: data.length },
    closed: false,
    async read(buf, bufOffset, length, offset) {
      return data.copy(buf, bufOffset, offset, Math.min(offset + length, data.length));
    },
    async check() {},
    async close() {
      this.closed = true;
    },
  };
}

t.test('the recorder keeps what was read in the window after the first read, then only forwards', async (t) => {
  const data = Buffer.alloc(10 << 20, 7);
  const inner = bufferReader(data);
  const got: ByteRange[][] = [];
  const windows: Array<{ end: () => void; ms: number; cancelled: boolean }> = [];
  const r = new RecordingLayerReader(inner, 150, (ranges) => got.push(ranges), (end, ms) => {
    const w = { end, ms, cancelled: false };
    windows.push(w);
    return () => void (w.cancelled = true);
  });
  const buf = Buffer.alloc(8192);
  t.equal(windows.length, 0, 'no window before the first read');
  await r.read(buf, 0, 4096, 5 << 20);
  await r.read(buf, 0, 4096, (5 << 20) + 4096);
  t.equal(await r.read(buf, 0, 8192, data.length - 100), 100, 'reads are forwarded');
  t.same(windows.map((w) => w.ms), [150], 'one window, opened at the first read');
  t.same(got, [], 'nothing reported while the window is open');
  windows[0]!.end(); // the window's time is up
  await r.read(buf, 0, 4096, 0);
  t.same(got, [[[5 << 20, (5 << 20) + 8192], [data.length - 100, data.length]]], 'the window closed before the last read; ranges clipped to the layer');
  await r.close();
  t.ok(inner.closed);
  t.equal(got.length, 1, 'reported once');
  t.equal(windows.length, 1, 'no second window after the first closed');
});

t.test('closing the reader before the window ends reports what was read; no reads, no report', async (t) => {
  const got: ByteRange[][] = [];
  const r = new RecordingLayerReader(bufferReader(Buffer.alloc(1 << 20)), 60_000, (ranges) => got.push(ranges));
  await r.read(Buffer.alloc(10), 0, 10, 100);
  await r.close();
  t.same(got, [[[100, 110]]]);
  const idle = new RecordingLayerReader(bufferReader(Buffer.alloc(1 << 20)), 60_000, (ranges) => got.push(ranges));
  await idle.close();
  t.equal(got.length, 1);
});

t.test('the recorder forwards the fast paths (page cache, splice) of the reader under it and records what they serve', async (t) => {
  const data = Buffer.alloc(1 << 20, 3);
  const plain = bufferReader(data);
  const calls: string[] = [];
  const inner = {
    ...plain,
    readNow: (buf: Buffer, bufOffset: number, length: number, offset: number): number => {
      calls.push(`now ${offset}`);
      return offset >= 4096 ? 0 : data.copy(buf, bufOffset, offset, offset + length);
    },
    diskRange: (offset: number, length: number) => {
      calls.push(`disk ${offset}`);
      return offset >= 300_000 ? undefined : { fd: 42, position: offset, served: () => {} };
    },
  };
  const got: ByteRange[][] = [];
  const r = new RecordingLayerReader(inner, 60_000, (ranges) => got.push(ranges));
  t.equal(r.readNow?.(Buffer.alloc(100), 0, 100, 0), 100, 'readNow forwarded');
  t.equal(r.readNow?.(Buffer.alloc(100), 0, 100, 100_000), 0, 'a readNow that served nothing');
  t.equal(r.diskRange?.(200_000, 1000)?.position, 200_000, 'diskRange forwarded');
  t.equal(r.diskRange?.(400_000, 100), undefined, 'no range from the inner reader: none');
  t.same(calls, ['now 0', 'now 100000', 'disk 200000', 'disk 400000']);
  await r.close();
  t.same(got, [[[0, 100], [200_000, 201_000]]], 'what the fast paths served is in the profile, what they did not serve is not');
  const without = new RecordingLayerReader(plain, 60_000, () => {});
  t.equal(without.readNow, undefined, 'a reader without fast paths: none forwarded');
  t.equal(without.diskRange, undefined);
});
