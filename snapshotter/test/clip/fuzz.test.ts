/**
 * Seeded, bounded fuzzing of the two parsers that read untrusted bytes in clip/: the tar parser
 * (layers from any registry) and the index decoder (artifacts and ContentCache objects). Every
 * input must end in a result or a ClipError — never a hang, another exception, or an allocation
 * larger than the limits allow. Deterministic: a fixed seed and iteration count, so a failure
 * names the iteration that reproduces it.
 */
import { Readable } from 'node:stream';
import { uncompressSync } from 'lz4-napi';
import t from 'tap';
import { buildIndex, decodeIndex, encodeIndex, TarParser } from '../../src/clip/index.js';
import { isTypedRefusal, largestAllocation, mutateBytes, prng } from '../fuzz-helpers.js';
import { sealIndex } from './index-fixtures.js';
import { gnuLong, header, member, pax, tar } from './tar-fixtures.js';

const SEED = 0x12c11b;
const ITERATIONS = 1500;
/** Every limit small, so any allocation beyond this means a declared size went unchecked. */
const LIMITS = { maxEntries: 500, maxIndexBytes: 1 << 20, maxXattrBytesPerEntry: 8192, maxXattrBytesTotal: 65536 };
const MAX_ALLOC = 2 << 20;

/** Bytes that mean something in a tar header: typeflags ('V' volume, 'x'/'g' PAX, 'L' long name), digits. */
const TAR_INTERESTING = [0x00, 0xff, 0x80, 0xc0, 0x7f, 0x30, 0x37, 0x20, 0x56, 0x78, 0x67, 0x4c];

/** A tar numeric field (size, mode, uid, ...) of some header block made base-256 with the sign bit set. */
function negativeBase256(out: Buffer, rnd: () => number): Buffer {
  const block = Math.floor(rnd() * Math.max(1, out.length / 512)) * 512;
  const field = [100, 108, 116, 124, 136][Math.floor(rnd() * 5)] ?? 124;
  if (block + field + 12 <= out.length) {
    out[block + field] = 0xff;
    for (let k = 1; k < 8; k++) out[block + field + k] = Math.floor(rnd() * 256);
  }
  return out;
}

const mutate = (buf: Buffer, rnd: () => number): Buffer => mutateBytes(buf, rnd, TAR_INTERESTING, [negativeBase256]);

/** Fix a tar header block's checksum so mutations get past it and reach the fields. */
function fixChecksums(buf: Buffer, rnd: () => number): Buffer {
  for (let b = 0; b + 512 <= buf.length; b += 512) {
    if (rnd() < 0.3) continue;
    const block = buf.subarray(b, b + 512);
    if (block.every((x) => x === 0)) continue;
    block.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of block) sum += x;
    block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  }
  return buf;
}

const CAP = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x20, 0x00, 0xff, 0x0a]);
const SEEDS = [
  tar(
    member({ name: 'bin/', type: '5', mode: 0o755 }),
    pax([['SCHILY.xattr.security.capability', CAP], ['mtime', '1700000000.5']]),
    member({ name: 'bin/ping', mode: 0o4711 }, 'ping'),
    member({ name: 'bin/sh', type: '2', linkname: 'busybox' }),
    member({ name: 'bin/busybox', mode: 0o755, uid: 1001, gid: 1002 }, Buffer.alloc(1500, 3)),
    member({ name: 'bin/hard', type: '1', linkname: 'bin/busybox' }),
    member({ name: 'dev/sda', type: '4', devMajor: 8, devMinor: 0 }),
    member({ name: 'opq/.wh..wh..opq' }),
    member({ name: 'opq/.wh.gone' }),
  ),
  tar(pax([['SCHILY.xattr.user.g', 'global'], ['uname', 'g']], 'g'), gnuLong('L', `${'long/'.repeat(30)}name`), member({ name: 'x', gnu: true }, 'data'), member({ name: 'y' })),
  tar(header({ name: 'vol', type: 'V', gnu: true }), member({ name: 'after-volume' }, 'v')),
];

t.test(`tar parser: ${ITERATIONS} mutated streams end in entries or a ClipError`, async (t) => {
  const rnd = prng(SEED);
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const seed = SEEDS[i % SEEDS.length] as Buffer;
    let input = seed;
    for (let m = 0; m < 1 + Math.floor(rnd() * 3); m++) input = mutate(input, rnd);
    input = fixChecksums(Buffer.from(input), rnd);
    const chunk = 1 + Math.floor(rnd() * 1024);
    const { value: outcome, largest } = largestAllocation(() => {
      try {
        const p = new TarParser(() => undefined, LIMITS);
        for (let o = 0; o < input.length; o += chunk) p.push(input.subarray(o, o + chunk));
        p.end();
        return 'ok';
      } catch (err) {
        return err;
      }
    });
    if (outcome === 'ok') parsed++;
    else if (isTypedRefusal(outcome)) rejected++;
    else t.fail(`iteration ${i}: not a typed error: ${String(outcome)}`);
    if (largest > MAX_ALLOC) t.fail(`iteration ${i}: allocated ${largest} bytes`);
  }
  t.ok(parsed > 0 && rejected > 0, `both outcomes reached (${parsed} parsed, ${rejected} rejected)`);
});

t.test(`index decoder: ${ITERATIONS} mutated indexes end in a reader or a ClipError; readers never throw`, async (t) => {
  const rnd = prng(SEED ^ 0x5a5a);
  const encoded = await Promise.all(SEEDS.map(async (s) => encodeIndex(await buildIndex(Readable.from([s])))));
  const payloads = encoded.map((e) => uncompressSync(e.subarray(32)));
  let decoded = 0;
  let rejected = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const k = i % encoded.length;
    // Half the inputs are re-sealed (checksums valid), so mutations reach the section and row checks.
    const input = rnd() < 0.5 ? mutate(encoded[k] as Buffer, rnd) : sealIndex(mutate(payloads[k] as Buffer, rnd));
    const { value: outcome, largest } = largestAllocation(() => {
      try {
        const r = decodeIndex(input, LIMITS);
        // Everything a FUSE handler may ask of a validated index.
        for (let e = 0; e < r.entryCount; e++) {
          const entry = r.entryAt(e);
          r.xattrs(e);
          if (entry.type === 'dir') r.readdir(entry.path);
          r.lookup(entry.path);
        }
        return 'ok';
      } catch (err) {
        return err;
      }
    });
    if (outcome === 'ok') decoded++;
    else if (isTypedRefusal(outcome)) rejected++;
    else t.fail(`iteration ${i}: not a typed error: ${String(outcome)}`);
    if (largest > MAX_ALLOC) t.fail(`iteration ${i}: allocated ${largest} bytes`);
  }
  t.ok(decoded > 0 && rejected > 0, `both outcomes reached (${decoded} decoded, ${rejected} rejected)`);
});
