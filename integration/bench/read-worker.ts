/**
 * Child process of the FUSE read benchmark: the process serving FUSE must never read its own
 * mounts. Usage: node read-worker.js PATH seq|rand BLOCK_BYTES COUNT [PASSES] → one JSON line {bytes, ms}
 * (PASSES, default 1, repeats the whole read so a fast one lasts long enough to time).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const [path, mode, blockArg, countArg, passesArg] = process.argv.slice(2);
if (!path || (mode !== 'seq' && mode !== 'rand')) {
  process.stderr.write('usage: read-worker.js PATH seq|rand BLOCK_BYTES COUNT\n');
  process.exit(2);
}
const block = Number(blockArg ?? 1 << 20);
const fd = openSync(path, 'r');
const size = fstatSync(fd).size;
const buf = Buffer.alloc(block);
let bytes = 0;
const t0 = performance.now();
for (let pass = 0; pass < Number(passesArg ?? 1); pass++) {
if (mode === 'seq') {
  for (let off = 0; off < size; ) {
    const n = readSync(fd, buf, 0, block, off);
    if (n === 0) break;
    off += n;
    bytes += n;
  }
} else {
  // A fixed LCG so every run and both targets read the same offsets.
  let x = 12345;
  const blocks = Math.floor(size / block);
  for (let i = 0; i < Number(countArg ?? 4096); i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    bytes += readSync(fd, buf, 0, block, (x % blocks) * block);
  }
}
}
const ms = performance.now() - t0;
closeSync(fd);
process.stdout.write(`${JSON.stringify({ bytes, ms })}\n`);
