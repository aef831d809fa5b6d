/** Small writers for a layer's staging directory: every entry kind a layer tar can carry. */
import { chmodSync, chownSync, copyFileSync, linkSync, lchownSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runCommand } from '../harness/run-command.js';

export interface Owner {
  mode?: number;
  uid?: number;
  gid?: number;
}

/** Writes paths relative to a staging root; parents are created 0755 root:root. */
export class StagingTree {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    mkdirSync(root, { recursive: true });
  }

  #abs(path: string): string {
    const abs = join(this.root, path);
    mkdirSync(dirname(abs), { recursive: true });
    return abs;
  }

  // chown clears setuid/setgid, so ownership goes first and the mode last.
  #own(abs: string, o: Owner, defaultMode: number): void {
    chownSync(abs, o.uid ?? 0, o.gid ?? 0);
    chmodSync(abs, o.mode ?? defaultMode);
  }

  dir(path: string, o: Owner = {}): this {
    const abs = this.#abs(path);
    mkdirSync(abs, { recursive: true });
    this.#own(abs, o, 0o755);
    return this;
  }

  file(path: string, content: string | Buffer, o: Owner = {}): this {
    const abs = this.#abs(path);
    writeFileSync(abs, content);
    this.#own(abs, o, 0o644);
    return this;
  }

  copy(path: string, from: string, o: Owner = {}): this {
    const abs = this.#abs(path);
    copyFileSync(from, abs);
    this.#own(abs, o, 0o755);
    return this;
  }

  symlink(path: string, target: string, o: Owner = {}): this {
    const abs = this.#abs(path);
    symlinkSync(target, abs);
    lchownSync(abs, o.uid ?? 0, o.gid ?? 0);
    return this;
  }

  /** A second name for the existing `existing` (both inside this layer). */
  hardlink(path: string, existing: string): this {
    linkSync(join(this.root, existing), this.#abs(path));
    return this;
  }

  async fifo(path: string, o: Owner = {}): Promise<this> {
    const abs = this.#abs(path);
    await runCommand('mkfifo', [abs]);
    this.#own(abs, o, 0o644);
    return this;
  }

  async charDevice(path: string, major: number, minor: number, o: Owner = {}): Promise<this> {
    const abs = this.#abs(path);
    await runCommand('mknod', [abs, 'c', String(major), String(minor)]);
    this.#own(abs, o, 0o666);
    return this;
  }

  /** Set an xattr; `value` is passed to setfattr as-is (`0x…` for hex). */
  async xattr(path: string, name: string, value: string): Promise<this> {
    await runCommand('setfattr', ['-h', '-n', name, '-v', value, join(this.root, path)]);
    return this;
  }

  /** OCI whiteout: an empty regular file `.wh.NAME` deleting NAME from lower layers. */
  whiteout(path: string): this {
    const abs = this.#abs(path);
    writeFileSync(join(dirname(abs), `.wh.${abs.slice(dirname(abs).length + 1)}`), '');
    return this;
  }

  /** OCI opaque marker: lower layers' contents of directory `path` are hidden. */
  opaque(path: string, o: Owner = {}): this {
    this.dir(path, o);
    writeFileSync(join(this.root, path, '.wh..wh..opq'), '');
    return this;
  }
}
