// The daemon ↔ FUSE server socket with a fake read path: calls, typed errors across the socket,
// deadlines, bounded frames, reconnecting to a new instance.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClipError, notFound } from '../../src/errors/index.js';
import {
  FrameDecoder, FuseServerClient, MAX_FRAME_BYTES, SocketRemoteLayers, encodeFrame, fromWireError, fuseServerHandlers, listenFuseServer, toWireError,
} from '../../src/fuseserver/index.js';
import { silentLogger } from '../../src/log/index.js';
import { IdMapping } from '../../src/snapshots/index.js';

class FakeLayers {
  mounted = new Map<string, string>();
  calls: string[] = [];
  hang = false;
  async mount(mp: string, labels: Readonly<Record<string, string>>, ctx: { key: string; restore: boolean }): Promise<Record<string, string> | undefined> {
    this.calls.push(`mount ${mp} ${ctx.key} ${ctx.restore}`);
    if (this.hang) await new Promise(() => undefined);
    if (labels.lazy !== 'yes') return undefined;
    this.mounted.set(mp, labels.layer ?? '');
    return { 'clip.layer': labels.layer ?? '' };
  }
  async check(mp: string): Promise<void> {
    if (!this.mounted.has(mp)) throw notFound('CLIP_SNAPSHOT_NOT_FOUND', `nothing at ${mp}`);
  }
  async mountMapped(src: string, target: string, ids: IdMapping): Promise<void> {
    this.calls.push(`mapped ${src} ${target} ${ids.uid(0)}`);
  }
  async unmount(mp: string): Promise<void> {
    this.mounted.delete(mp);
  }
  dirs = new Map<string, string>();
  async localDir(mp: string): Promise<string | undefined> {
    return this.dirs.get(mp);
  }
  async retire(mp: string): Promise<boolean> {
    return this.dirs.has(mp);
  }
  servedMounts() {
    return [...this.mounted.entries()].map(([mountpoint, d]) => ({ mountpoint, layer: { ref: 'r', digest: d, diffId: d, uncompressedSize: 1 } }));
  }
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'clip-fuse-sock-'));
  const address = join(dir, 'fuse.sock');
  const layers = new FakeLayers();
  const fallbacks: string[] = [];
  const server = await listenFuseServer(address, fuseServerHandlers({ remote: layers, log: silentLogger(), onFallback: (c) => fallbacks.push(c) }), silentLogger());
  t.teardown(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, address, layers, server, fallbacks };
}

t.test('RemoteLayers calls cross the socket and come back', async (t) => {
  const { address, layers, fallbacks } = await setup(t);
  const client = new FuseServerClient({ address, log: silentLogger() });
  t.teardown(() => client.close());
  const remote = new SocketRemoteLayers(client);
  t.same(await remote.mount('/m/1', { lazy: 'yes', layer: 'sha256:a' }, { key: 'k1', restore: false, log: silentLogger() }), { 'clip.layer': 'sha256:a' });
  t.equal(await remote.mount('/m/2', { lazy: 'no' }, { key: 'k2', restore: true, log: silentLogger() }), undefined, 'not lazily servable stays undefined');
  await remote.check('/m/1', {});
  t.same(await remote.served(), ['/m/1']);
  await remote.mountMapped('/m/1', '/m/1/idmap/x', new IdMapping([{ containerId: 0, hostId: 100000, size: 65536 }], [{ containerId: 0, hostId: 100000, size: 65536 }]), silentLogger());
  t.ok(layers.calls.includes('mapped /m/1 /m/1/idmap/x 100000'), 'the id mapping arrives whole');
  await remote.recordFallback('CLIP_INDEX_NOT_CACHED');
  t.same(fallbacks, ['CLIP_INDEX_NOT_CACHED']);
  // Extracted layers (deliverable 3's seam) cross too.
  t.equal(await remote.localDir('/m/1'), undefined);
  t.equal(await remote.retire('/m/1'), false);
  layers.dirs.set('/m/1', '/cache/extracted/abc');
  t.equal(await remote.localDir('/m/1'), '/cache/extracted/abc');
  t.equal(await remote.retire('/m/1'), true);
  await remote.unmount('/m/1');
  t.same(await remote.served(), []);
});

t.test('events the server sends unasked reach every connected daemon', async (t) => {
  const { address, server } = await setup(t);
  const events: string[] = [];
  const client = new FuseServerClient({ address, log: silentLogger(), onEvent: (e) => events.push(`${e.event} ${e.mountpoint}`) });
  t.teardown(() => client.close());
  const remote = new SocketRemoteLayers(client);
  await remote.served();
  server.broadcast({ id: 0, event: 'extracted', mountpoint: '/m/7' });
  // The next answer comes after the event on the same connection.
  await remote.served();
  t.same(events, ['extracted /m/7']);
});

t.test('typed errors keep their kind and code', async (t) => {
  const { address } = await setup(t);
  const client = new FuseServerClient({ address, log: silentLogger() });
  t.teardown(() => client.close());
  const err = await new SocketRemoteLayers(client).check('/nowhere', {}).catch((e: unknown) => e);
  t.ok(err instanceof ClipError);
  t.equal((err as ClipError).code, 'CLIP_SNAPSHOT_NOT_FOUND');
  t.equal((err as ClipError).kind, 'not_found');
  t.match((err as ClipError).message, /nothing at \/nowhere/);
  const unknown = await client.call('nope' as 'hello', {}, 5_000).catch((e: unknown) => e);
  t.equal((unknown as ClipError).code, 'CLIP_FUSE_SERVER_UNKNOWN_METHOD');
  // A code this build does not know, or a kind that does not match it, is not trusted.
  t.equal(fromWireError({ kind: 'not_found', code: 'CLIP_MADE_UP', message: 'x' }).code, 'CLIP_FUSE_SERVER_BAD_FRAME');
  t.equal(fromWireError({ kind: 'internal', code: 'CLIP_SNAPSHOT_NOT_FOUND', message: 'x' }).code, 'CLIP_FUSE_SERVER_BAD_FRAME');
  t.same(toWireError(new Error('plain')), { kind: 'internal', code: 'CLIP_INTERNAL', message: 'plain' });
});

t.test('every call has a deadline', async (t) => {
  const { address, layers } = await setup(t);
  layers.hang = true;
  const client = new FuseServerClient({ address, log: silentLogger() });
  t.teardown(() => client.close());
  const err = await new SocketRemoteLayers(client, { mountMs: 200 }).mount('/m/9', { lazy: 'yes' }, { key: 'k', restore: false, log: silentLogger() }).catch((e: unknown) => e);
  t.equal((err as ClipError).code, 'CLIP_FUSE_SERVER_TIMEOUT');
  t.same(await new SocketRemoteLayers(client).served(), [], 'the connection still serves other calls');
});

t.test('frames are bounded and must be JSON', async (t) => {
  const d = new FrameDecoder();
  const frame = encodeFrame({ a: 1 });
  t.same(d.push(frame.subarray(0, 3)), [], 'a partial frame waits');
  t.same(d.push(Buffer.concat([frame.subarray(3), encodeFrame({ b: 2 })])), [{ a: 1 }, { b: 2 }]);
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
  t.throws(() => new FrameDecoder().push(big), { code: 'CLIP_FUSE_SERVER_BAD_FRAME' });
  const notJson = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')]);
  t.throws(() => new FrameDecoder().push(notJson), { code: 'CLIP_FUSE_SERVER_BAD_FRAME' });
  // The server drops a connection that sends garbage, and keeps serving others.
  const { address } = await setup(t);
  const closed = await new Promise<boolean>((resolve) => {
    const s = createConnection(address, () => s.write(big));
    s.once('close', () => resolve(true));
    s.once('error', () => undefined);
  });
  t.ok(closed);
  const client = new FuseServerClient({ address, log: silentLogger() });
  t.teardown(() => client.close());
  t.same(await new SocketRemoteLayers(client).served(), []);
});

t.test('a second server refuses the socket; a client reconnects to a new instance and says so', async (t) => {
  const { address, layers, server } = await setup(t);
  await t.rejects(listenFuseServer(address, fuseServerHandlers({ remote: layers, log: silentLogger() }), silentLogger()), { code: 'CLIP_FUSE_SERVER_RUNNING' });
  const seen: Array<[string, string | undefined]> = [];
  let closes = 0;
  const client = new FuseServerClient({ address, log: silentLogger(), onNewInstance: (i, p) => seen.push([i, p]), onClose: () => closes++ });
  t.teardown(() => client.close());
  const remote = new SocketRemoteLayers(client);
  await remote.served();
  await server.close();
  const next = await listenFuseServer(address, fuseServerHandlers({ remote: layers, log: silentLogger() }), silentLogger());
  t.teardown(() => next.close());
  await remote.served();
  t.equal(seen.length, 2);
  t.equal(seen[1]![1], seen[0]![0], 'the second instance is reported with the first as previous');
  t.not(seen[1]![0], seen[0]![0]);
  t.equal(closes, 1, 'the dropped connection was reported');
});
