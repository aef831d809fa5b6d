/** An in-memory IndexView for unit tests: entries by path, xattrs by entry index. */
import type { Entry, LayerMeta, Xattr } from '../../src/clip/types.js';
import type { IndexView } from '../../src/fuse/index.js';

type Spec = { type: Entry['type']; path: string } & Record<string, unknown>;

/** Fill the fields every entry has; `spec` overrides them. */
export function entry(spec: Spec, index: number): Entry {
  const name = spec.path.slice(spec.path.lastIndexOf('/') + 1);
  return {
    index, name, mode: 0o644, uid: 0, gid: 0, uname: 'root', gname: 'root', mtimeSec: 1_700_000_000,
    mtimeNsec: 0, inode: index + 1, nlink: 1, xattrCount: 0, ...spec,
  } as unknown as Entry;
}

/** A fake index built from entry specs (the root is added when missing). */
export class FakeIndex implements IndexView {
  readonly meta: LayerMeta;
  readonly #byPath = new Map<string, Entry>();
  readonly #rows: Entry[] = [];
  readonly #xattrs = new Map<number, Xattr[]>();

  constructor(specs: Spec[], xattrs: Record<string, Record<string, string>> = {}) {
    const all = specs.some((s) => s.path === '') ? specs : [{ type: 'dir', path: '', mode: 0o755, opaque: false } as Spec, ...specs];
    all.forEach((s, i) => {
      const x = xattrs[s.path] ?? {};
      const list = Object.entries(x).map(([name, value]) => ({ name, value: Buffer.from(value) }));
      const e = entry({ ...s, xattrCount: list.length }, i);
      this.#byPath.set(e.path, e);
      this.#rows.push(e);
      this.#xattrs.set(i, list);
    });
    this.meta = { diffId: 'sha256:' + 'ab'.repeat(32), compressedDigest: 'sha256:' + 'cd'.repeat(32), compression: 'none', uncompressedSize: 1 << 20, entryCount: all.length };
  }

  lookup(path: string): Entry | undefined {
    return this.#byPath.get(path);
  }

  readdir(path: string): Entry[] | undefined {
    const dir = this.#byPath.get(path);
    if (dir?.type !== 'dir') return undefined;
    const prefix = path === '' ? '' : `${path}/`;
    return [...this.#byPath.values()].filter((e) => e.path !== '' && e.path.startsWith(prefix) && !e.path.slice(prefix.length).includes('/'));
  }

  entryAt(i: number): Entry {
    const e = this.#rows[i];
    if (e === undefined) throw new RangeError(`row ${i}`);
    return e;
  }

  xattrs(e: Entry): Xattr[] {
    return this.#xattrs.get(e.index) ?? [];
  }
}
