/**
 * One layer written out as an ordinary directory in overlayfs's on-disk lower-dir form, from its
 * clip index and its verified uncompressed tar: what the FUSE layer presents, byte for byte, so a
 * container can use it with no daemon behind it. Whiteouts become character devices 0/0, opaque
 * directories get `trusted.overlay.opaque=y`; hardlinks, xattrs, owners, modes (setuid included),
 * device nodes and mtimes are kept.
 *
 * Nothing from the index is trusted to name a place on disk: every object is created by its single
 * name component inside a directory this walk created itself (exclusively, never following a
 * symlink), a name that is not one plain component is refused, and hardlinks are made between names
 * this walk created for the same inode — a hardlink's target path is never resolved.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, lchown, link, lutimes, mkdir, open, rm, symlink, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Entry, Xattr } from '../clip/types.js';
import { dataCorrupt, internal, messageOf } from '../errors/index.js';

const run = promisify(execFile);
const CHUNK = 1 << 20;
const COMMAND_TIMEOUT_MS = 10 * 60_000;
/** What overlayfs reads in a lower dir to hide everything below a directory. */
const OPAQUE_XATTR = 'trusted.overlay.opaque';
const BLOCK = 4096;

/** The slice of a clip index the extraction walks (`ClipIndexReader` satisfies it). */
export interface ExtractSource {
  lookup(path: string): Entry | undefined;
  readdir(path: string): readonly Entry[] | undefined;
  xattrs(entry: Entry): readonly Xattr[];
}

/** Reads of the layer's uncompressed tar (verified against its diffID before the first read). */
export type ReadLayer = (buf: Buffer, bufOffset: number, length: number, offset: number) => Promise<number>;

/** What an extraction wrote. */
export interface ExtractResult {
  /** Space the tree takes, in whole 4 KiB blocks per file and directory (hardlinked data once). */
  bytes: number;
  entries: number;
}

interface Pending {
  path: string;
  e: Entry;
}

/** Awaited before each entry and each 1 MiB copied: extraction is background work and yields to FUSE reads there. */
export type BeforeBatch = () => Promise<void>;

/**
 * Write the tree of `src` into `dest`, which must not exist yet (its parent must). Throws
 * `data_corrupt` CLIP_EXTRACT_BAD_ENTRY for an entry that cannot be a plain name, or whose data
 * lies outside the layer.
 */
export async function extractLayer(src: ExtractSource, read: ReadLayer, dest: string, layerSize: number, beforeBatch?: BeforeBatch): Promise<ExtractResult> {
  const root = src.lookup('');
  if (root?.type !== 'dir') throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', 'the index has no root directory');
  await mkdir(dest, { mode: 0o700 });
  const w = new Walk(src, read, layerSize, beforeBatch);
  await w.dir('', dest);
  await w.finish(dest);
  return { bytes: w.bytes, entries: w.entries };
}

class Walk {
  bytes = 0;
  entries = 0;
  readonly #src: ExtractSource;
  readonly #read: ReadLayer;
  readonly #layerSize: number;
  /** The first name created for each inode of several names: later names link to it. */
  readonly #firstOfInode = new Map<number, string>();
  /** Directories, in creation order: their metadata is applied after their contents. */
  readonly #dirs: Pending[] = [];
  readonly #xattrLines: string[] = [];
  readonly #buf = Buffer.allocUnsafe(CHUNK);
  readonly #beforeBatch: BeforeBatch | undefined;

  constructor(src: ExtractSource, read: ReadLayer, layerSize: number, beforeBatch: BeforeBatch | undefined) {
    this.#src = src;
    this.#read = read;
    this.#layerSize = layerSize;
    this.#beforeBatch = beforeBatch;
  }

  /** Create the children of the directory `rel` (already created at `abs`), depth first. */
  async dir(rel: string, abs: string): Promise<void> {
    const self = this.#src.lookup(rel);
    if (self?.type !== 'dir') throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', `index directory ${JSON.stringify(rel)} is not a directory`);
    this.#dirs.push({ path: abs, e: self });
    this.entries++;
    this.bytes += BLOCK;
    const seen = new Set<string>();
    for (const e of this.#src.readdir(rel) ?? []) {
      await this.#beforeBatch?.();
      checkName(e.name, rel);
      if (seen.has(e.name)) throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', `index directory ${JSON.stringify(rel)} lists ${JSON.stringify(e.name)} twice`);
      seen.add(e.name);
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      const childAbs = join(abs, e.name);
      if (e.type === 'dir') {
        // Exclusive: fails on anything already there, so the walk only ever descends into its own directories.
        await mkdir(childAbs, { mode: 0o700 });
        await this.dir(childRel, childAbs);
      } else {
        await this.#leaf(e, childAbs);
      }
    }
  }

  async #leaf(e: Entry, abs: string): Promise<void> {
    this.entries++;
    const first = e.nlink > 1 ? this.#firstOfInode.get(e.inode) : undefined;
    if (first !== undefined) {
      await link(first, abs);
      return;
    }
    switch (e.type) {
      case 'file':
        await this.#file(abs, e.size, e.dataOffset, e);
        break;
      case 'hardlink':
        // The first name of its inode the walk meets: created from the link's own copy of the data.
        if (e.linkedType === 'file') await this.#file(abs, e.size, e.dataOffset, e);
        else await this.#node(abs, e.linkedType === 'fifo' ? 'p' : e.linkedType === 'char' ? 'c' : 'b', e.devMajor, e.devMinor, e);
        break;
      case 'symlink':
        await symlink(e.target, abs);
        await lchown(abs, e.uid, e.gid);
        break;
      case 'char':
      case 'block':
        await this.#node(abs, e.type === 'char' ? 'c' : 'b', e.devMajor, e.devMinor, e);
        break;
      case 'fifo':
        await this.#node(abs, 'p', 0, 0, e);
        break;
      case 'whiteout':
        // overlayfs's whiteout in a lower dir: a character device 0/0 under the plain name.
        await this.#node(abs, 'c', 0, 0, e);
        break;
      default:
        throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', `index entry ${JSON.stringify(e.path)} has an unknown type`);
    }
    this.#xattrsOf(abs, e);
    if (e.nlink > 1) this.#firstOfInode.set(e.inode, abs);
    await setTime(abs, e, e.type === 'symlink');
  }

  async #file(abs: string, size: number, dataOffset: number, e: Entry): Promise<void> {
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(dataOffset) || size < 0 || dataOffset < 0 || dataOffset + size > this.#layerSize) {
      throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', `index entry ${JSON.stringify(e.path)}: ${size} bytes at ${dataOffset} lie outside the ${this.#layerSize}-byte layer`);
    }
    const fh = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await this.#copy(fh, size, dataOffset, e.path);
      // chown before chmod: chown clears setuid/setgid.
      await fh.chown(e.uid, e.gid);
      await fh.chmod(e.mode & 0o7777);
    } finally {
      await fh.close();
    }
    this.bytes += Math.ceil(size / BLOCK) * BLOCK;
  }

  async #copy(fh: FileHandle, size: number, dataOffset: number, path: string): Promise<void> {
    let done = 0;
    while (done < size) {
      if (done > 0) await this.#beforeBatch?.();
      const want = Math.min(CHUNK, size - done);
      const n = await this.#read(this.#buf, 0, want, dataOffset + done);
      if (n <= 0) throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', `index entry ${JSON.stringify(path)}: the layer ended ${size - done} bytes early`);
      let written = 0;
      while (written < n) written += (await fh.write(this.#buf, written, n - written, done + written)).bytesWritten;
      done += n;
    }
  }

  /** mknod(2) is not in Node's fs: coreutils' mknod, which creates exclusively and follows nothing. */
  async #node(abs: string, kind: 'c' | 'b' | 'p', major: number, minor: number, e: Entry): Promise<void> {
    const args = ['-m', (e.mode & 0o777).toString(8), '--', abs, kind, ...(kind === 'p' ? [] : [String(major), String(minor)])];
    await run('mknod', args, { timeout: COMMAND_TIMEOUT_MS }).catch((err: unknown) => {
      throw internal('CLIP_EXTRACT_FAILED', `mknod ${abs}: ${messageOf(err)}`, err);
    });
    await lchown(abs, e.uid, e.gid);
    await chmod(abs, e.mode & 0o7777);
  }

  #xattrsOf(abs: string, e: Entry): void {
    const list = e.xattrCount > 0 ? [...this.#src.xattrs(e)] : [];
    if (e.type === 'dir' && e.opaque && !list.some((x) => x.name === OPAQUE_XATTR)) list.push({ name: OPAQUE_XATTR, value: Buffer.from('y') });
    if (list.length === 0) return;
    this.#xattrLines.push(`# file: ${escapeName(Buffer.from(abs))}`);
    for (const x of list) this.#xattrLines.push(`${escapeName(Buffer.from(x.name))}=0x${x.value.toString('hex')}`);
    this.#xattrLines.push('');
  }

  /** Directory metadata (deepest first, so no later creation changes an mtime), then every xattr at once. */
  async finish(dest: string): Promise<void> {
    for (const d of this.#dirs) {
      await lchown(d.path, d.e.uid, d.e.gid);
      await chmod(d.path, d.e.mode & 0o7777);
      this.#xattrsOf(d.path, d.e);
    }
    // After every chown: chown drops security.capability. setfattr's restore format takes them all
    // in one process; -h sets them on symlinks themselves.
    if (this.#xattrLines.length > 0) {
      const file = `${dest}.xattrs`;
      await writeFile(file, this.#xattrLines.join('\n') + '\n', { mode: 0o600, flag: 'wx' });
      try {
        await run('setfattr', ['-h', `--restore=${file}`], { timeout: COMMAND_TIMEOUT_MS });
      } catch (err) {
        throw internal('CLIP_EXTRACT_FAILED', `setting extended attributes under ${dest}: ${messageOf(err)}`, err);
      } finally {
        await rm(file, { force: true });
      }
    }
    for (let i = this.#dirs.length - 1; i >= 0; i--) {
      const d = this.#dirs[i]!;
      await setTime(d.path, d.e, false);
    }
  }
}

/** A name the index may use for one directory entry: a single component, nothing that moves. */
function checkName(name: string, parent: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw dataCorrupt('CLIP_EXTRACT_BAD_ENTRY', `index directory ${JSON.stringify(parent)} has an entry named ${JSON.stringify(name)}`);
  }
}

async function setTime(abs: string, e: Entry, isSymlink: boolean): Promise<void> {
  const t = e.mtimeSec + e.mtimeNsec / 1e9;
  await (isSymlink ? lutimes(abs, t, t) : utimes(abs, t, t));
}

/** getfattr's quoting, which setfattr --restore undoes: every byte outside printable ASCII, '\\' and '=' as \ooo. */
function escapeName(b: Buffer): string {
  let out = '';
  for (const c of b) {
    out += c <= 0x20 || c >= 0x7f || c === 0x5c || c === 0x3d ? `\\${c.toString(8).padStart(3, '0')}` : String.fromCharCode(c);
  }
  return out;
}
