/**
 * The hand-over channel between a FUSE server and its successor, with a stand-in for the old
 * server (descriptors of ordinary files instead of /dev/fuse connections): every mount's state
 * and descriptor arrive intact; an old server that dies before `end` leaves the successor with an
 * error and nothing open; one that dies after `end` is taken over; a refusal is reported.
 */
import { closeSync, openSync, readdirSync, readSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { findClipError } from '../../src/errors/index.js';
import { FrameDecoder, encodeFrame } from '../../src/fuseserver/frames.js';
import { HandoverSender, receiveHandover } from '../../src/fuseserver/handover.js';
import { fusedev } from '../../src/fuse/kernel/addon.js';
import type { HandoverMount } from '../../src/remote/index.js';

const log = pino({ level: 'silent' });
const dir = await mkdtemp(join(tmpdir(), 'clip-handover-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const mount = (n: number, connected: boolean): HandoverMount => ({
  mountpoint: `/snapshots/${n}/fs`,
  layer: { ref: 'r/x:1', digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, diffId: `sha256:${'d'.repeat(64)}` },
  indexDigest: 'a'.repeat(64),
  trusted: true,
  ...(connected ? { negotiated: { major: 7, minor: 31, flags: 1, maxReadahead: 1 << 20, maxWrite: 131072, maxPages: 256 } } : {}),
});

/**
 * A stand-in old server on `address`: on `handover`, runs `act` with a sender connected to the
 * successor, or `raw` with the successor's path (to misbehave below the sender).
 */
async function oldServer(address: string, act: (s: HandoverSender) => void | Promise<void>, raw?: (path: string) => void): Promise<Server> {
  const server = createServer((sock) => {
    const dec = new FrameDecoder();
    sock.on('data', (chunk: Buffer) => {
      for (const m of dec.push(chunk) as Array<{ id: number; method: string; params: { path: string } }>) {
        if (m.method !== 'handover') continue;
        void (async () => {
          try {
            if (raw) raw(m.params.path);
            else await act(HandoverSender.connect(m.params.path));
            sock.write(encodeFrame({ id: m.id, result: {} }));
          } catch (err) {
            sock.write(encodeFrame({ id: m.id, error: { kind: 'unavailable', code: 'CLIP_FUSE_HANDOVER_FAILED', message: String(err) } }));
          }
        })();
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(address, resolve));
  return server;
}

function fileWith(name: string, text: string): number {
  writeFileSync(join(dir, name), text);
  return openSync(join(dir, name), 'r');
}

t.test('every mount arrives with its descriptor; the successor acks after `closed`', async (t) => {
  const address = join(dir, 'a.sock');
  const fds = [fileWith('one', 'first'), -1, fileWith('three', 'third')];
  let sender: HandoverSender | undefined;
  const server = await oldServer(address, (s) => {
    s.sendMounts([mount(1, true), mount(2, false), mount(3, true)], fds);
    for (const fd of fds) if (fd >= 0) closeSync(fd); // the old server's copies go; the successor's stay
    s.sendClosed();
    sender = s;
  });
  t.teardown(() => server.close());
  const got = await receiveHandover(address, log);
  t.same(got.mounts.map((m) => m.mountpoint), ['/snapshots/1/fs', '/snapshots/2/fs', '/snapshots/3/fs']);
  t.equal(got.fds[1], -1, 'a retired layer comes without a descriptor');
  const read = (fd: number): string => {
    const b = Buffer.alloc(16);
    return b.toString('utf8', 0, readSync(fd, b, 0, 16, 0));
  };
  t.same([read(got.fds[0]!), read(got.fds[2]!)], ['first', 'third'], 'the same open files, passed by SCM_RIGHTS');
  t.same(got.mounts[0]?.negotiated?.minor, 31);
  got.ackListening();
  // (One process plays both sides here, so the old side's blocking wait runs after the ack.)
  t.equal(sender?.waitListening(1_000), true, 'the old server hears `listening`');
  sender?.close();
  for (const fd of got.fds) if (fd >= 0) closeSync(fd);
  got.close();
});

t.test('an old server that dies before `end`: an error, and nothing received stays open', async (t) => {
  const address = join(dir, 'b.sock');
  const sent = fileWith('half', 'x');
  const server = await oldServer(address, () => undefined, (path) => {
    // One mount of two, then the connection ends: the old server was killed mid-way.
    const fd = fusedev().seqConnect(path);
    fusedev().seqSend(fd, Buffer.from(JSON.stringify({ type: 'mount', mount: mount(1, true) })), [sent], 5_000);
    closeSync(fd);
  });
  t.teardown(() => server.close());
  const before = openFds();
  const err = await receiveHandover(address, log).catch((e: unknown) => e);
  t.equal(findClipError(err)?.code, 'CLIP_FUSE_HANDOVER_FAILED');
  t.match(String((err as Error).message), /went away after 1 mounts/);
  t.equal(openFds(), before, 'the descriptor that arrived was closed again');
  closeSync(sent);
});

t.test('an old server that dies after `end` is taken over', async (t) => {
  const address = join(dir, 'd.sock');
  const sent = fileWith('all', 'y');
  const server = await oldServer(address, (s) => {
    s.sendMounts([mount(1, true)], [sent]);
    s.close(); // killed before `closed`
  });
  t.teardown(() => server.close());
  const got = await receiveHandover(address, log);
  t.equal(got.mounts.length, 1);
  t.ok(got.fds[0]! >= 0, 'the mount and its descriptor are kept');
  closeSync(got.fds[0]!);
  got.close();
  closeSync(sent);
});

t.test('a malformed mount message is refused', async (t) => {
  const address = join(dir, 'e.sock');
  const server = await oldServer(address, () => undefined, (path) => {
    const fd = fusedev().seqConnect(path);
    fusedev().seqSend(fd, Buffer.from(JSON.stringify({ type: 'mount', mount: { ...mount(1, false), indexDigest: '../x' } })), [], 5_000);
    closeSync(fd);
  });
  t.teardown(() => server.close());
  const err = await receiveHandover(address, log).catch((e: unknown) => e);
  t.match(String((err as Error).message), /malformed/);
});

t.test('a refusal from the running server is reported', async (t) => {
  const address = join(dir, 'c.sock');
  const server = await oldServer(address, () => {
    throw new Error('layer at /x is served by the libfuse driver');
  });
  t.teardown(() => server.close());
  const err = await receiveHandover(address, log).catch((e: unknown) => e);
  t.equal(findClipError(err)?.code, 'CLIP_FUSE_HANDOVER_FAILED');
  t.match(String((err as Error).message), /libfuse driver/);
});

t.test('nothing to take over', async (t) => {
  const err = await receiveHandover(join(dir, 'none.sock'), log).catch((e: unknown) => e);
  t.equal(findClipError(err)?.code, 'CLIP_FUSE_HANDOVER_FAILED');
});

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
