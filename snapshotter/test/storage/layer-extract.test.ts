/**
 * Extracting a completed layer into an overlay lower dir: what the FUSE layer presents (whiteouts,
 * opaque dirs, hardlinks, xattrs, owners, setuid modes, devices), nothing written outside the
 * destination whatever the tar or the index says, and the atomic publish of `ExtractedLayers`.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildIndex, decodeIndex, encodeIndex } from '../../src/clip/index.js';
import type { Entry, Xattr } from '../../src/clip/types.js';
import { ClipError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/log/index.js';
import { DiskEviction } from '../../src/storage/disk-eviction.js';
import { NoContentCache } from '../../src/contentcache/index.js';
import { ExtractedLayers, LayerStore, extractLayer, type ExtractSource } from '../../src/storage/index.js';
import { FakeBlobSource, makeLayer, tempDir } from './fixtures.js';
import { member, pax, tar } from '../clip/tar-fixtures.js';
import { entry, FakeIndex } from '../fuse/fake-index.js';

async function scratch(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-extract-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Index a tar as the daemon would and return it with a reader of the tar's bytes. */
async function indexed(bytes: Buffer): Promise<{ source: ExtractSource; read: (b: Buffer, o: number, l: number, at: number) => Promise<number>; size: number }> {
  const idx = decodeIndex(encodeIndex(await buildIndex(Readable.from([bytes]))));
  return {
    source: idx,
    read: async (b, o, l, at) => bytes.copy(b, o, at, Math.min(bytes.length, at + l)),
    size: bytes.length,
  };
}

function xattrsOf(path: string): Record<string, string> {
  const out = execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path], { encoding: 'utf8' });
  const x: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (!line.startsWith('#') && eq > 0) x[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return x;
}

/** Every path under `dir`, relative, sorted. */
function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const p = rel === '' ? name : `${rel}/${name}`;
    out.push(p);
    if (lstatSync(join(dir, p)).isDirectory()) out.push(...tree(dir, p));
  }
  return out;
}

t.test('a layer becomes the overlay lower dir the FUSE layer presents', async (t) => {
  const dir = await scratch(t);
  const layer = tar(
    member({ name: 'bin/', type: '5', mode: 0o755 }),
    member({ name: 'bin/su', mode: 0o4755, uid: 0, gid: 0 }, 'setuid binary'),
    member({ name: 'bin/login', type: '1', linkname: 'bin/su' }),
    member({ name: 'home/', type: '5', mode: 0o750, uid: 1000, gid: 1001 }),
    member({ name: 'home/notes', mode: 0o640, uid: 1000, gid: 1001, mtime: 1_600_000_000 }, 'mine\n'),
    member({ name: 'abs-link', type: '2', linkname: '/etc/passwd' }),
    member({ name: 'dev/', type: '5', mode: 0o755 }),
    member({ name: 'dev/null', type: '3', mode: 0o666, devMajor: 1, devMinor: 3 }),
    member({ name: 'dev/fifo', type: '6', mode: 0o600 }),
    member({ name: '.wh.gone', mode: 0o600 }),
    member({ name: 'opaque/', type: '5', mode: 0o755 }),
    member({ name: 'opaque/.wh..wh..opq', mode: 0o600 }),
    member({ name: 'opaque/kept', mode: 0o644 }, 'kept'),
    pax([['SCHILY.xattr.user.note', 'hello'], ['SCHILY.xattr.security.capability', Buffer.from('0100000200040000000000000000000000000000', 'hex')]]),
    member({ name: 'capped', mode: 0o755, uid: 33, gid: 33 }, 'x'),
  );
  const { source, read, size } = await indexed(layer);
  const dest = join(dir, 'root');
  const result = await extractLayer(source, read, dest, size);
  t.ok(result.entries >= 12, `${result.entries} entries written`);
  t.ok(result.bytes > 0);

  const su = lstatSync(join(dest, 'bin/su'));
  t.equal(su.mode & 0o7777, 0o4755, 'setuid kept');
  t.equal(readFileSync(join(dest, 'bin/su'), 'utf8'), 'setuid binary');
  const login = lstatSync(join(dest, 'bin/login'));
  t.equal(login.ino, su.ino, 'the hardlink shares the inode');
  t.equal(su.nlink, 2);
  const notes = lstatSync(join(dest, 'home/notes'));
  t.same([notes.uid, notes.gid, notes.mode & 0o7777], [1000, 1001, 0o640], 'owner and mode');
  t.equal(Math.floor(notes.mtimeMs / 1000), 1_600_000_000, 'mtime');
  const home = lstatSync(join(dest, 'home'));
  t.same([home.uid, home.gid, home.mode & 0o7777], [1000, 1001, 0o750], 'directory owner and mode');
  t.equal(readlinkSync(join(dest, 'abs-link')), '/etc/passwd', 'an absolute symlink is kept as text');
  const nul = lstatSync(join(dest, 'dev/null'));
  t.ok(nul.isCharacterDevice());
  t.equal(nul.rdev, (1 << 8) | 3, 'device numbers');
  t.ok(lstatSync(join(dest, 'dev/fifo')).isFIFO());
  const gone = lstatSync(join(dest, 'gone'));
  t.ok(gone.isCharacterDevice() && gone.rdev === 0, 'a whiteout is a character device 0/0 under the plain name');
  t.notOk(existsSync(join(dest, '.wh.gone')));
  t.equal(xattrsOf(join(dest, 'opaque'))['trusted.overlay.opaque'], '0x79', 'an opaque dir carries trusted.overlay.opaque=y');
  t.notOk(existsSync(join(dest, 'opaque/.wh..wh..opq')));
  const capped = xattrsOf(join(dest, 'capped'));
  t.equal(capped['user.note'], '0x68656c6c6f', 'user xattr');
  t.equal(capped['security.capability'], '0x0100000200040000000000000000000000000000', 'file capability survives the chown');
  t.same(lstatSync(join(dest, 'capped')).uid, 33);
});

t.test('hostile tar entries never write outside the destination', async (t) => {
  const dir = await scratch(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'untouched');
  // Each of these never becomes an index, so never a lazy layer nor an extraction.
  const hostile: Array<[string, Buffer]> = [
    ['an absolute symlink, then a write through it', tar(member({ name: 'evil', type: '2', linkname: outside }), member({ name: 'evil/pwned', mode: 0o644 }, 'x'))],
    ['a relative symlink out, then a write through it', tar(member({ name: 'up', type: '2', linkname: '../outside' }), member({ name: 'up/secret', mode: 0o644 }, 'x'))],
    ['a hardlink to an absolute path outside', tar(member({ name: 'hl', type: '1', linkname: join(outside, 'secret') }))],
    ['a hardlink to ../', tar(member({ name: 'hl', type: '1', linkname: '../outside/secret' }))],
    ['a .. member', tar(member({ name: '../escape', mode: 0o644 }, 'x'))],
    ['an absolute member', tar(member({ name: `${outside}/new`, mode: 0o644 }, 'x'))],
    ['a .. in the middle', tar(member({ name: 'a/../../escape', mode: 0o644 }, 'x'))],
  ];
  for (const [what, bytes] of hostile) {
    const err: unknown = await indexed(bytes).then(() => undefined, (e: unknown) => e);
    t.ok(err instanceof ClipError && err.kind === 'invalid_argument', `${what}: refused (${String(err)})`);
  }

  // Symlinks pointing outside are data: extracted as their text, never followed.
  const { source, read, size } = await indexed(tar(
    member({ name: 'evil', type: '2', linkname: outside }),
    member({ name: 'up', type: '2', linkname: '../../outside/secret' }),
    member({ name: 'd/', type: '5', mode: 0o755 }),
    member({ name: 'd/f', mode: 0o644 }, 'inside'),
  ));
  const dest = join(dir, 'root');
  await extractLayer(source, read, dest, size);
  t.equal(readlinkSync(join(dest, 'evil')), outside);
  t.equal(readlinkSync(join(dest, 'up')), '../../outside/secret');
  t.same(tree(dest), ['d', 'd/f', 'evil', 'up']);
  t.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'untouched', 'the file outside is untouched');
  t.same(await readdir(outside), ['secret'], 'nothing was created outside');
});

/** An index view that lies: whatever names and children it is given, as is. */
class LyingView implements ExtractSource {
  readonly #children: Map<string, Entry[]>;
  readonly #byPath = new Map<string, Entry>();
  constructor(children: Record<string, Array<Record<string, unknown> & { type: Entry['type']; path: string }>>) {
    this.#children = new Map();
    let i = 1;
    this.#byPath.set('', entry({ type: 'dir', path: '', mode: 0o755, opaque: false } as never, 0));
    for (const [dir, specs] of Object.entries(children)) {
      const list = specs.map((s) => entry(s as never, i++));
      this.#children.set(dir, list);
      for (const e of list) if (!this.#byPath.has(e.path)) this.#byPath.set(e.path, e);
    }
  }
  lookup(path: string): Entry | undefined {
    return this.#byPath.get(path);
  }
  readdir(path: string): Entry[] | undefined {
    return this.#children.get(path) ?? [];
  }
  xattrs(): Xattr[] {
    return [];
  }
}

t.test('an index that lies about names or links cannot move the extraction outside', async (t) => {
  const dir = await scratch(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  const read = async (b: Buffer, o: number, l: number): Promise<number> => b.fill(0x61, o, o + l) && l;
  const cases: Array<[string, ConstructorParameters<typeof LyingView>[0]]> = [
    ['a name of ..', { '': [{ type: 'file', path: '..', name: '..', size: 1, dataOffset: 0 }] }],
    ['a name with a slash', { '': [{ type: 'file', path: 'x', name: '../outside/x', size: 1, dataOffset: 0 }] }],
    ['an absolute name', { '': [{ type: 'file', path: 'x', name: `${outside}/x`, size: 1, dataOffset: 0 }] }],
    ['an empty name', { '': [{ type: 'file', path: 'x', name: '', size: 1, dataOffset: 0 }] }],
    // A symlink and then a directory of the same name listed under it: the walk never descends into a symlink.
    ['a directory behind a symlink', {
      '': [{ type: 'symlink', path: 'l', name: 'l', target: outside }, { type: 'dir', path: 'l', name: 'l', opaque: false, mode: 0o755 }],
      l: [{ type: 'file', path: 'l/pwned', name: 'pwned', size: 1, dataOffset: 0 }],
    }],
    ['data past the end of the layer', { '': [{ type: 'file', path: 'big', name: 'big', size: 10, dataOffset: 1 << 20 }] }],
  ];
  for (const [what, spec] of cases) {
    const dest = join(dir, `root-${cases.findIndex((c) => c[0] === what)}`);
    await t.rejects(extractLayer(new LyingView(spec), read, dest, 1 << 20), { code: 'CLIP_EXTRACT_BAD_ENTRY' }, `${what}: refused`);
    t.same(await readdir(outside), [], `${what}: nothing outside`);
  }

  // A hardlink whose target names a path outside: linked by inode among the walk's own names only.
  const view = new FakeIndex([
    { type: 'hardlink', path: 'hl', target: '../../outside/secret', linkedType: 'file', size: 3, dataOffset: 0, devMajor: 0, devMinor: 0, inode: 7, nlink: 2 },
    { type: 'file', path: 'real', size: 3, dataOffset: 0, inode: 7, nlink: 2 },
  ]);
  const dest = join(dir, 'links');
  await extractLayer(view, read, dest, 1 << 20);
  t.equal(readFileSync(join(dest, 'hl'), 'utf8'), 'aaa', 'the link made its own file from the layer');
  t.equal(lstatSync(join(dest, 'hl')).ino, lstatSync(join(dest, 'real')).ino, 'and the other name links to it');
  t.same(await readdir(outside), [], 'nothing outside');
});

t.test('ExtractedLayers: atomic publish, crash leftovers removed, complete dirs kept across restarts, pins stop eviction', async (t) => {
  const dir = await scratch(t);
  const layer = tar(member({ name: 'f', mode: 0o644 }, 'data'));
  const good = await indexed(layer);
  const hexA = 'a'.repeat(64);
  const hexB = 'b'.repeat(64);
  const layers = new ExtractedLayers(dir, silentLogger());
  await layers.start();
  t.equal(layers.dirOf(hexA), undefined);

  // A read failing mid-way: no dir under the layer's name, no temp dir left.
  const failing = { ...good, read: async (): Promise<number> => { throw new Error('disk gone'); } };
  t.equal(await layers.extract({ hex: hexA, ...failing }), undefined, 'a failed extraction resolves undefined');
  t.same(await readdir(dir), [], 'and leaves nothing behind');

  const [one, two] = await Promise.all([layers.extract({ hex: hexA, ...good }), layers.extract({ hex: hexA, ...good })]);
  t.equal(one, join(dir, hexA, 'root'));
  t.equal(two, one, 'concurrent extractions share one run');
  t.equal(readFileSync(join(one!, 'f'), 'utf8'), 'data');
  t.ok(layers.totalBytes > 0, 'counted');

  // What a crash leaves: a temp dir mid-extraction, a layer dir without its record.
  await mkdir(join(dir, `.tmp-${hexB}-1-1`, 'root'), { recursive: true });
  await mkdir(join(dir, hexB, 'root'), { recursive: true });
  const again = new ExtractedLayers(dir, silentLogger());
  await again.start();
  t.equal(again.dirOf(hexA), join(dir, hexA, 'root'), 'a complete dir is used directly after a restart');
  t.equal(again.dirOf(hexB), undefined, 'a dir without its record is not');
  t.same((await readdir(dir)).sort(), [hexA], 'half-made dirs are deleted at start');
  t.equal(again.totalBytes, layers.totalBytes, 'its size comes from the record');

  t.equal(await again.evict(hexA), false, 'a dir found at start is not evicted before its layer is released (a running container may use it)');
  again.pin(hexA);
  again.release(hexA);
  t.equal(await again.evict(hexA), false, 'a pinned dir is not evicted');
  again.unpin(hexA);
  t.equal(await again.evict(hexA), true, 'released and unpinned: evicted');
  t.same(await readdir(dir), [], 'evicted dir removed');
  t.equal(again.totalBytes, 0);
});

t.test('eviction counts extracted layers, takes them last, and never one that is held or pinned', async (t) => {
  const dir = await scratch(t);
  const layers = new ExtractedLayers(dir, silentLogger());
  await layers.start();
  const src = await indexed(tar(member({ name: 'f', mode: 0o644 }, Buffer.alloc(40_000, 1))));
  const [h1, h2, h3] = ['1', '2', '3'].map((c) => c.repeat(64)) as [string, string, string];
  for (const hex of [h1, h2, h3]) {
    await layers.extract({ hex, ...src });
    layers.release(hex);
  }
  const each = layers.totalBytes / 3;
  layers.pin(h2);
  const removed: string[] = [];
  const disk = { totalBytes: 0, lru: () => [] as string[], sizeOf: () => undefined, remove: async () => undefined };
  const eviction = new DiskEviction({
    maxSizeBytes: Math.floor(each * 1.5), disk: disk as never, sparse: { usage: async () => [], evict: async () => false },
    extracted: layers, log: silentLogger(), held: (hex) => hex === h3, removing: (hex) => void removed.push(hex),
  });
  eviction.schedule();
  await eviction.idle;
  t.equal(layers.dirOf(h1), undefined, 'the unpinned, unheld layer is evicted');
  t.ok(layers.dirOf(h2), 'the pinned one stays');
  t.ok(layers.dirOf(h3), 'the held one stays');
  t.equal(layers.totalBytes, each * 2, 'over the limit, the rest is pinned');
});

t.test('LayerStore: onLayerComplete fires when a layer completes; openComplete reads only a verified complete file, uncounted', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(200_000);
  const opts = { cacheDir: dir, blobs: new FakeBlobSource([layer]), contentCache: new NoContentCache(), readTimeoutMs: 2_000, retryBaseDelayMs: 10 };
  const store = await LayerStore.create(opts);
  t.teardown(() => store.close());
  const completed: string[] = [];
  store.onLayerComplete((hex) => completed.push(hex));
  t.equal(await store.openComplete(layer.ref), undefined, 'nothing on disk yet');
  const r = store.open(layer.ref);
  await r.read(Buffer.alloc(10), 0, 10, 0);
  await store.drain();
  t.same(completed, [layer.hex], 'the download completing fired once');
  const before = store.ledger.entries().find((e) => e.diffId === layer.ref.diffId);
  const file = await store.openComplete(layer.ref);
  t.ok(file, 'complete: a reader');
  const buf = Buffer.alloc(layer.tar.length + 100);
  t.equal(await file!.read(buf, 0, buf.length, 0), layer.tar.length, 'reads clamp at the end of the layer');
  t.same(buf.subarray(0, layer.tar.length), layer.tar);
  file!.close();
  const after = store.ledger.entries().find((e) => e.diffId === layer.ref.diffId);
  t.same(after, before, 'the bulk read is not counted as container reads');
  await r.close();
  await store.close();

  // A new process finds the file corrupted: openComplete refuses it (and the file is dropped).
  await writeFile(join(dir, layer.hex), Buffer.alloc(layer.tar.length, 7));
  const again = await LayerStore.create({ ...opts, blobs: new FakeBlobSource([layer]) });
  t.teardown(() => again.close());
  t.equal(await again.openComplete(layer.ref), undefined, 'a cached file that does not hash to its diffID is not read');
});

t.test('extraction passes its gate before each entry and each further 1 MiB, and waits while it is held', async (t) => {
  const dir = await scratch(t);
  const big = Buffer.alloc(2.5 * 1024 * 1024, 7);
  const { source, read, size } = await indexed(tar(
    member({ name: 'big', mode: 0o644 }, big),
    member({ name: 'small', mode: 0o644 }, 'small\n'),
  ));
  let passes = 0;
  let hold: (() => void) | undefined;
  const beforeBatch = async (): Promise<void> => {
    passes++;
    // The second pass (before the second MiB of `big`) is held until the test lets it go.
    if (passes === 2) await new Promise<void>((resolve) => (hold = resolve));
  };
  const dest = join(dir, 'root');
  let done = false;
  const run = extractLayer(source, read, dest, size, beforeBatch).then((r) => ((done = true), r));
  while (hold === undefined) await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  t.equal(done, false, 'held at the gate');
  t.equal(lstatSync(join(dest, 'big')).size, 1024 * 1024, 'only the first MiB of big is written while held');
  hold();
  const r = await run;
  t.equal(passes, 4, 'big, its second and third MiB, small');
  t.equal(r.entries, 3);
  t.same(readFileSync(join(dest, 'big')), big, 'the file is whole once let go');
});
