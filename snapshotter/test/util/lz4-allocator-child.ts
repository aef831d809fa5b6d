/** Child of lz4-allocator.test.ts: LZ4 work on the thread pool, then the RSS of the allocator's arena (KiB) on stdout. */
import { readFileSync } from 'node:fs';
import { compress, uncompress } from '../../src/util/lz4.js';

const chunk = Buffer.alloc(4 << 20);
for (let i = 0; i < chunk.length; i += 7) chunk[i] = (i * 31) & 0xff;
for (let r = 0; r < 100; r++) {
  const packed = await Promise.all([0, 1, 2, 3].map(() => compress(chunk)));
  await Promise.all(packed.map((p) => uncompress(p)));
}
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
await new Promise((r) => setTimeout(r, 200));
gc?.();
await new Promise((r) => setTimeout(r, 200));
// The arena: the only anonymous mapping of 512 MiB or more.
let big = false;
let arenaKiB = -1;
for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
  const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
  if (m) big = parseInt(m[2] as string, 16) - parseInt(m[1] as string, 16) >= 512 * 1024 * 1024;
  else if (big && line.startsWith('Rss:')) arenaKiB = Math.max(arenaKiB, Number(/(\d+)/.exec(line)?.[1]));
}
process.stdout.write(JSON.stringify({ arenaKiB, purgeDelay: process.env['MIMALLOC_PURGE_DELAY'] }));
