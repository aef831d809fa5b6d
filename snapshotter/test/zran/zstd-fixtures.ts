/** Multi-frame zstd streams made by the real zstd CLI and pzstd, and tables built from them. */
import { execFileSync } from 'node:child_process';
import { ZstdFrameBuilder, decodeZstdFrameTable, encodeZstdFrameTable, type ZstdFrameBuilderOptions, type ZstdFrameTable } from '../../src/zran/index.js';

/** `zstd` with `args` over `data` (stdin, so no content size unless `--stream-size` says it). */
export function zstd(data: Buffer, args: string[] = ['-3']): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });
}

/** A skippable frame (magic 0x184D2A5n) carrying `payload`. */
export function skippable(payload: Buffer, n = 0): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + n, 0);
  head.writeUInt32LE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

/** `data` cut into pieces of `piece` bytes, each its own `zstd` frame, concatenated. */
export function framed(data: Buffer, piece: number, args?: (i: number) => string[]): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; at += piece, i++) parts.push(zstd(data.subarray(at, at + piece), args?.(i)));
  return Buffer.concat(parts);
}

/** Multi-frame encoders of the same data. */
export const MULTI_FRAME: Record<string, (data: Buffer) => Buffer> = {
  // pzstd cuts the input into window-sized jobs and puts a skippable frame before each.
  'pzstd -1': (d) => execFileSync('pzstd', ['-q', '-1', '-p', '2', '-c'], { input: d, maxBuffer: 1 << 30 }),
  // Frames with and without content size, checksum, a single-segment one, plus skippable and empty frames.
  'mixed zstd -c': (d) => {
    const cut = [Math.floor(d.length / 4), Math.floor(d.length / 2), Math.floor((3 * d.length) / 4)] as const;
    return Buffer.concat([
      zstd(d.subarray(0, cut[0]), ['-1']),
      skippable(Buffer.from('not data')),
      zstd(d.subarray(cut[0], cut[1]), ['-9', '--no-check', `--stream-size=${cut[1] - cut[0]}`]),
      zstd(Buffer.alloc(0)),
      zstd(d.subarray(cut[1], cut[2]), ['-3', '--content-size', `--stream-size=${cut[2] - cut[1]}`]),
      zstd(d.subarray(cut[2], cut[2] + 100), ['-1', '--stream-size=100']),
      zstd(d.subarray(cut[2] + 100, cut[2] + 1100), ['-1', '--stream-size=1000']),
      zstd(d.subarray(cut[2] + 1100), ['--fast=3']),
      zstd(Buffer.alloc(0)),
      skippable(Buffer.alloc(300, 7), 15),
    ]);
  },
  // Many small frames, as zstd:chunked writes one per file.
  'one frame per 96 KiB': (d) => framed(d, 96 * 1024, (i) => (i % 2 === 0 ? ['-3'] : ['-1', '--no-check'])),
};

/** Run a builder over `blob` in `chunk`-byte pieces; returns the output and the table (through encode/decode). */
export function buildZstd(blob: Buffer, opts: ZstdFrameBuilderOptions, chunk = 65536): { out: Buffer; table: ZstdFrameTable | undefined; builder: ZstdFrameBuilder } {
  const builder = new ZstdFrameBuilder(opts);
  const parts: Buffer[] = [];
  for (let i = 0; i < blob.length; i += chunk) builder.push(blob.subarray(i, i + chunk), (b) => parts.push(b));
  builder.end();
  const t = builder.finish();
  return { out: Buffer.concat(parts), table: t ? decodeZstdFrameTable(encodeZstdFrameTable(t)) : undefined, builder };
}
