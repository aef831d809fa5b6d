/** Shared pieces of the seeded fuzz tests (issue 12): a deterministic PRNG, mutations, an allocation spy. */
import { ClipError } from '../src/errors/index.js';

/** mulberry32: small, fast, and the same sequence on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Records the largest Buffer allocation made through the Buffer factories while `fn` runs. */
export function largestAllocation<T>(fn: () => T): { value: T; largest: number } {
  const names = ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const;
  const saved = names.map((n) => Buffer[n]);
  let largest = 0;
  for (const [i, n] of names.entries()) {
    const orig = saved[i] as (size: number, ...rest: unknown[]) => Buffer;
    (Buffer as unknown as Record<string, unknown>)[n] = (size: number, ...rest: unknown[]): Buffer => {
      largest = Math.max(largest, size);
      return orig.call(Buffer, size, ...rest);
    };
  }
  try {
    return { value: fn(), largest };
  } finally {
    for (const [i, n] of names.entries()) (Buffer as unknown as Record<string, unknown>)[n] = saved[i];
  }
}

/** A format-aware mutation a fuzz test adds to the byte-level ones. */
export type Mutation = (out: Buffer, rnd: () => number) => Buffer;

/** Byte-level mutations (bit flips, interesting bytes, truncation, splices, random runs), plus `extra`. */
export function mutateBytes(
  buf: Buffer,
  rnd: () => number,
  interesting: readonly number[] = [0x00, 0xff, 0x80, 0x7f, 0x01],
  extra: readonly Mutation[] = [],
): Buffer {
  const out = Buffer.from(buf);
  const at = (): number => Math.floor(rnd() * Math.max(1, out.length));
  const pick = Math.floor(rnd() * (5 + extra.length));
  switch (pick) {
    case 0:
      for (let k = 0; k < 1 + rnd() * 8; k++) { const i = at(); out[i] = (out[i] ?? 0) ^ (1 << Math.floor(rnd() * 8)); }
      return out;
    case 1:
      for (let k = 0; k < 1 + rnd() * 4; k++) out[at()] = interesting[Math.floor(rnd() * interesting.length)] ?? 0;
      return out;
    case 2:
      return out.subarray(0, at());
    case 3: {
      const i = at();
      return Buffer.concat([out.subarray(0, i), out.subarray(i, i + Math.floor(rnd() * 2048)), out.subarray(i)]);
    }
    case 4: {
      const i = at();
      for (let k = 0; k < Math.floor(rnd() * 64) && i + k < out.length; k++) out[i + k] = Math.floor(rnd() * 256);
      return out;
    }
    default:
      return (extra[pick - 5] as Mutation)(out, rnd);
  }
}

/** A ClipError other than `internal`: the only acceptable way for a parser to refuse input. */
export function isTypedRefusal(err: unknown): boolean {
  return err instanceof ClipError && err.kind !== 'internal';
}
