import t, { type Test } from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { RespGetClient } from '../../src/contentcache/resp-get-client.js';

/** A fake Redis: `answer` gets each command (as its argument strings) and the socket to reply on. */
async function fakeRedis(t: Test, answer: (args: string[], sock: Socket) => void): Promise<{ port: number; commands: string[][]; connections: () => number }> {
  const commands: string[][] = [];
  let connections = 0;
  const server = createServer((sock) => {
    connections++;
    let pending = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      // Parse complete RESP arrays of bulk strings (what the client sends).
      for (;;) {
        const text = pending.toString('latin1');
        const m = /^\*(\d+)\r\n/.exec(text);
        if (!m) return;
        let at = m[0].length;
        const args: string[] = [];
        for (let i = 0; i < Number(m[1]); i++) {
          const h = /^\$(\d+)\r\n/.exec(text.slice(at));
          if (!h) return;
          const len = Number(h[1]);
          if (text.length < at + h[0].length + len + 2) return;
          args.push(text.slice(at + h[0].length, at + h[0].length + len));
          at += h[0].length + len + 2;
        }
        pending = pending.subarray(at);
        commands.push(args);
        answer(args, sock);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, commands, connections: () => connections };
}

const bulk = (v: Buffer): Buffer => Buffer.concat([Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n')]);

/** Write `data` one slice at a time (sizes cycling through `sizes`), so replies split anywhere. */
async function dribble(sock: Socket, data: Buffer, sizes: number[]): Promise<void> {
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = sizes[i % sizes.length] as number;
    sock.write(data.subarray(at, at + n));
    at += n;
    await new Promise((r) => setImmediate(r));
  }
}

t.test('pipelined GETs: values, a missing key, replies split at any byte or coalesced', async (t) => {
  const values: Record<string, Buffer> = { a: randomBytes(300_000), b: Buffer.from('small'), c: Buffer.alloc(0), big: randomBytes(5 << 20) };
  for (const sizes of [[1, 2, 3, 5, 7, 11, 4093, 65_537], [65_536], [1 << 30]]) {
    const replies: Buffer[] = [];
    const server = await fakeRedis(t, (args, sock) => {
      const v = values[args[1] as string];
      replies.push(v ? bulk(v) : Buffer.from('$-1\r\n'));
      // Answer once all five were sent, as one stream, cut into `sizes`.
      if (replies.length === 5) void dribble(sock, Buffer.concat(replies), sizes);
    });
    const client = new RespGetClient({ host: '127.0.0.1', port: server.port, timeoutMs: 20_000 });
    t.teardown(() => client.close());
    const got = await Promise.all(['a', 'none', 'b', 'c', 'big'].map((k) => client.get(k, 6 << 20)));
    const label = `slices of ${sizes.join(',')}`;
    t.same(got.map((g) => g.type), ['value', 'null', 'value', 'value', 'value'], label);
    for (const [i, k] of [[0, 'a'], [2, 'b'], [3, 'c'], [4, 'big']] as const) {
      const g = got[i]!;
      t.ok(g.type === 'value' && g.value.equals(values[k]!), `${label}: ${k} byte-exact`);
    }
    t.same(server.commands.map((c) => c.join(' ')), ['GET a', 'GET none', 'GET b', 'GET c', 'GET big']);
  }
});

t.test('a value longer than allowed is read past, not kept; the next reply still parses', async (t) => {
  const server = await fakeRedis(t, (args, sock) => {
    sock.write(bulk(args[1] === 'long' ? Buffer.alloc(100_000, 1) : Buffer.from('ok')));
  });
  const client = new RespGetClient({ host: '127.0.0.1', port: server.port, timeoutMs: 5_000 });
  t.teardown(() => client.close());
  const [long, next] = await Promise.all([client.get('long', 99_999), client.get('next', 10)]);
  t.same(long, { type: 'too_large', bytes: 100_000 });
  t.ok(next.type === 'value' && next.value.toString() === 'ok', 'the following reply is intact');
  t.equal(server.connections(), 1, 'on the same connection');
});

t.test('an error reply fails its GET only; a malformed reply fails everything pending and the next GET reconnects', async (t) => {
  let n = 0;
  const server = await fakeRedis(t, (args, sock) => {
    n++;
    if (args[1] === 'err') sock.write('-WRONGTYPE Operation against a key holding the wrong kind of value\r\n');
    else if (args[1] === 'bad') sock.write(':42\r\n');
    else if (n > 2) sock.write(bulk(Buffer.from(args[1] as string)));
    // 'hang' (n <= 2) gets no answer: it is failed by the malformed reply after it.
  });
  const client = new RespGetClient({ host: '127.0.0.1', port: server.port, timeoutMs: 5_000 });
  t.teardown(() => client.close());
  await t.rejects(client.get('err', 10), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: /GET failed: WRONGTYPE/ });
  const hang = client.get('hang', 10);
  const bad = client.get('bad', 10);
  await t.rejects(bad, { kind: 'unavailable', message: /unexpected reply to GET/ });
  await t.rejects(hang, { kind: 'unavailable', message: /unexpected reply/ }, 'a request pipelined with it fails too (nothing can be matched any more)');
  const again = await client.get('again', 10);
  t.ok(again.type === 'value' && again.value.toString() === 'again', 'reconnected');
  t.equal(server.connections(), 2);
});

t.test('deadline: a server that never answers fails the GET within timeoutMs, never hangs', async (t) => {
  const server = await fakeRedis(t, () => {});
  const client = new RespGetClient({ host: '127.0.0.1', port: server.port, timeoutMs: 200 });
  t.teardown(() => client.close());
  const started = performance.now();
  await t.rejects(client.get('k', 10), { kind: 'unavailable', message: /no reply within the deadline/ });
  t.ok(performance.now() - started >= 150, 'it waited for the deadline, not less');
});

t.test('a value cut short by a closed connection fails; a refused connection fails at once', async (t) => {
  const server = await fakeRedis(t, (_args, sock) => {
    sock.end(Buffer.from('$100\r\nonly part'));
  });
  const client = new RespGetClient({ host: '127.0.0.1', port: server.port, timeoutMs: 60_000 });
  t.teardown(() => client.close());
  await t.rejects(client.get('k', 1000), { kind: 'unavailable', message: /closed/ });
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const refused = new RespGetClient({ host: '127.0.0.1', port, timeoutMs: 60_000 });
  await t.rejects(refused.get('k', 10), { kind: 'unavailable', message: /ECONNREFUSED/ });
});

t.test('AUTH goes first; a refused AUTH fails the GETs behind it and the password is in no error', async (t) => {
  const server = await fakeRedis(t, (args, sock) => {
    if (args[0] === 'AUTH') sock.write(args[2] === 'right-pw' ? '+OK\r\n' : '-WRONGPASS invalid username-password pair\r\n');
    else sock.write(bulk(Buffer.from('v')));
  });
  const good = new RespGetClient({ host: '127.0.0.1', port: server.port, username: 'clip', password: 'right-pw', timeoutMs: 5_000 });
  t.teardown(() => good.close());
  const v = await good.get('k', 10);
  t.ok(v.type === 'value' && v.value.toString() === 'v');
  t.same(server.commands[0], ['AUTH', 'clip', 'right-pw'], 'AUTH with the ACL user, before the GET');
  const bad = new RespGetClient({ host: '127.0.0.1', port: server.port, username: 'clip', password: 'wrong-pw', timeoutMs: 5_000 });
  t.teardown(() => bad.close());
  const err = await bad.get('k', 10).then(() => new Error('no error'), (e: unknown) => e as Error);
  t.match(err, { kind: 'unavailable', message: /refused AUTH: WRONGPASS/ });
  t.notMatch(err.message, /wrong-pw|right-pw/);
});

t.test('take: values are received into memory the caller hands back, when it is large enough; else into new memory', async (t) => {
  const values: Record<string, Buffer> = { a: randomBytes(300_000), b: randomBytes(200_000), c: randomBytes(500_000) };
  const server = await fakeRedis(t, (args, sock) => {
    void dribble(sock, bulk(values[args[1] as string] as Buffer), [4093, 65_536]);
  });
  const given = [new ArrayBuffer(400_000), new ArrayBuffer(100)];
  const asked: number[] = [];
  // Hands out the front of `given` whatever the size asked: a too-small one must not be used.
  const client = new RespGetClient({ host: '127.0.0.1', port: server.port, timeoutMs: 20_000 }, (bytes) => {
    asked.push(bytes);
    return given.shift();
  });
  t.teardown(() => client.close());
  const first = new Uint8Array(given[0] as ArrayBuffer);
  const a = await client.get('a', 1 << 20);
  t.ok(a.type === 'value' && a.value.equals(values['a'] as Buffer), 'a byte-exact');
  t.ok(a.type === 'value' && a.value.buffer === first.buffer && a.value.byteOffset === 0, 'a was received into the memory handed back');
  const c = await client.get('c', 1 << 20);
  t.ok(c.type === 'value' && c.value.equals(values['c'] as Buffer), 'c byte-exact');
  t.ok(c.type === 'value' && c.value.buffer.byteLength >= 500_002, 'the 100-byte buffer was too small for c: new memory');
  const b = await client.get('b', 1 << 20);
  t.ok(b.type === 'value' && b.value.equals(values['b'] as Buffer), 'nothing handed back: b in new memory, intact');
  const long = await client.get('c', 1000);
  t.same(long, { type: 'too_large', bytes: 500_000 });
  t.same(asked, [300_002, 500_002, 200_002], 'asked only once a length was read and within the bound (value + CRLF); never for a refused one');
});
