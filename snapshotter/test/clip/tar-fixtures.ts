/** Helpers that craft tar streams byte by byte for the clip tests. */
import type tap from 'tap';
import { ClipError } from '../../src/errors/index.js';

/** Assert that fn throws a ClipError of the given kind and code. */
export function expectClipError(t: Pick<typeof tap, 'fail' | 'ok' | 'equal'>, fn: () => unknown, kind: string, code: string): void {
  try {
    fn();
    t.fail(`expected ${code}`);
  } catch (err) {
    t.ok(err instanceof ClipError, `is a ClipError (${String(err)})`);
    t.equal((err as ClipError).kind, kind);
    t.equal((err as ClipError).code, code);
  }
}

/** Async variant of expectClipError. */
export async function rejectsClipError(t: Pick<typeof tap, 'fail' | 'ok' | 'equal'>, p: Promise<unknown>, kind: string, code: string): Promise<void> {
  try {
    await p;
    t.fail(`expected ${code}`);
  } catch (err) {
    t.ok(err instanceof ClipError, `is a ClipError (${String(err)})`);
    t.equal((err as ClipError).kind, kind);
    t.equal((err as ClipError).code, code);
  }
}

export interface HeaderSpec {
  name: string;
  type?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devMajor?: number;
  devMinor?: number;
  prefix?: string;
  gnu?: boolean;
  /** Fields to write in base-256 instead of octal. */
  base256?: Array<'uid' | 'gid' | 'size' | 'mtime'>;
  badChecksum?: boolean;
}

const FIELDS = { mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], devMajor: [329, 8], devMinor: [337, 8] } as const;

function octal(buf: Buffer, value: number, [at, len]: readonly [number, number]): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', at, len, 'latin1');
}

function base256(buf: Buffer, value: number, [at, len]: readonly [number, number]): void {
  let v = BigInt(value);
  if (v < 0n) v += 1n << BigInt(len * 8);
  for (let i = len - 1; i >= 0; i--) {
    buf[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[at] = (buf[at] ?? 0) | 0x80;
}

/** One 512-byte header block. */
export function header(spec: HeaderSpec): Buffer {
  const b = Buffer.alloc(512);
  b.write(spec.name, 0, 100, 'utf8');
  const values = { mode: spec.mode ?? 0o644, uid: spec.uid ?? 0, gid: spec.gid ?? 0, size: spec.size ?? 0, mtime: spec.mtime ?? 1700000000, devMajor: spec.devMajor ?? 0, devMinor: spec.devMinor ?? 0 };
  for (const [k, field] of Object.entries(FIELDS) as Array<[keyof typeof FIELDS, readonly [number, number]]>) {
    if ((spec.base256 as string[] | undefined)?.includes(k)) base256(b, values[k], field);
    else octal(b, values[k], field);
  }
  b.write(spec.type ?? '0', 156, 1, 'latin1');
  b.write(spec.linkname ?? '', 157, 100, 'utf8');
  if (spec.gnu === true) b.write('ustar  \0', 257, 8, 'latin1');
  else b.write('ustar\x0000', 257, 8, 'latin1');
  b.write(spec.uname ?? 'root', 265, 32, 'utf8');
  b.write(spec.gname ?? 'root', 297, 32, 'utf8');
  if (spec.prefix !== undefined) b.write(spec.prefix, 345, 155, 'utf8');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  if (spec.badChecksum === true) sum += 1;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

/** Data padded to whole blocks. */
export function padded(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** A PAX record `LEN KEY=VALUE\n` with the self-referential length computed. */
export function paxRecord(key: string, value: string | Buffer): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value) : value;
  const rest = Buffer.byteLength(key) + v.length + 3;
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), v, Buffer.from('\n')]);
}

/** A PAX extended header (`x` or `g`) carrying the given records. */
export function pax(records: Array<[string, string | Buffer]>, type: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.concat(records.map(([k, v]) => paxRecord(k, v)));
  return Buffer.concat([header({ name: 'PaxHeaders/x', type, size: body.length }), padded(body)]);
}

/** A GNU long name (`L`) or long link (`K`) record. */
export function gnuLong(type: 'L' | 'K', text: string): Buffer {
  const body = Buffer.concat([Buffer.from(text), Buffer.from([0])]);
  return Buffer.concat([header({ name: '././@LongLink', type, size: body.length, gnu: true }), padded(body)]);
}

/** A member with header and data. */
export function member(spec: HeaderSpec, data?: string | Buffer): Buffer {
  const d = data === undefined ? Buffer.alloc(0) : typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([header({ ...spec, size: spec.size ?? d.length }), padded(d)]);
}

/** Concatenate parts and add the two zero blocks. */
export function tar(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}
