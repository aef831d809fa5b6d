/**
 * Child of lz4-into.test.ts: 200 ContentCache-sized chunks (4 MiB) compressed and inflated four at
 * a time on a 16-thread pool (the daemon's), through `lz4-into.ts` ("into") or lz4-napi's async API
 * ("napi"); then, after GC, the growth of resident anonymous memory in MiB on stdout.
 */
import { readFileSync } from 'node:fs';
import { compressFramed, uncompressFramed } from '../../src/util/lz4-into.js';
import { compress, uncompress } from '../../src/util/lz4.js';

const anonMiB = (): number => Number(/^RssAnon:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024;
const gc = (globalThis as { gc?: () => void }).gc;
const settle = async (): Promise<void> => {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
};

const chunk = Buffer.alloc(4 << 20);
for (let i = 0; i < chunk.length; i += 7) chunk[i] = (i * 31) & 0xff;
const mode = process.argv[2];
await settle();
const before = anonMiB();
const rounds = Number(process.argv[3] ?? 50);
for (let r = 0; r < rounds; r++) {
  if (mode === 'into') {
    const packed = await Promise.all([0, 1, 2, 3].map(() => compressFramed(chunk, 1)));
    await Promise.all(packed.map((p) => uncompressFramed(p!.subarray(1), chunk.length)));
  } else {
    const packed = await Promise.all([0, 1, 2, 3].map(() => compress(chunk)));
    await Promise.all(packed.map((p) => uncompress(p)));
  }
}
await settle();
process.stdout.write(JSON.stringify({ grewMiB: anonMiB() - before }));
