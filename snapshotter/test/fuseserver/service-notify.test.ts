/**
 * The FUSE server's systemd notifications (fuseserver/service-notify.ts) through the real addon
 * (clip_fusedev's sdNotify) to a real AF_UNIX SOCK_DGRAM socket, received by a python3 process
 * that binds it as systemd binds $NOTIFY_SOCKET (SO_PASSCRED, so the kernel tells it the sender's
 * pid, which is how systemd attributes a message to a unit): file system paths and `@abstract`
 * names, MAINPID/READY in one datagram, STOPPING; nothing without NOTIFY_SOCKET; a failed send is
 * logged with its code and not thrown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { fusedev } from '../../src/fuse/kernel/addon.js';
import { serviceNotifier } from '../../src/fuseserver/service-notify.js';
import type { Logger } from '../../src/log/index.js';

const RECEIVER = `
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
path = sys.argv[1]
s.bind(("\\0" + path[1:]) if path.startswith("@") else path)
print("bound", flush=True)
while True:
    data, anc, _, _ = s.recvmsg(8192, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, body in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", body[:12])[0]
    print(json.dumps({"data": data.decode(), "pid": pid}), flush=True)
`;

interface Datagram {
  data: string;
  pid: number | null;
}

/** A python3 receiver bound at `path`; `next()` resolves with each datagram in order. */
async function receiver(t: Test, path: string): Promise<{ next: () => Promise<Datagram> }> {
  const proc: ChildProcess = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    proc.kill('SIGKILL');
  });
  const lines: string[] = [];
  const waiters: Array<(l: string) => void> = [];
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const line = (): Promise<string> => {
    const l = lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      waiters.push(resolve);
      proc.once('exit', (code) => reject(new Error(`receiver exited with ${code}`)));
    });
  };
  t.equal(await line(), 'bound', `receiver bound ${path}`);
  return { next: async () => JSON.parse(await line()) as Datagram };
}

/** A logger whose records are kept, to see what a failure logged. */
function recordingLogger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      records.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink) as unknown as Logger, records };
}

const dir = await mkdtemp(join(tmpdir(), 'clip-notify-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('a file system NOTIFY_SOCKET gets MAINPID and READY in one datagram, then STOPPING', async (t) => {
  const path = join(dir, 'notify');
  const r = await receiver(t, path);
  const { log } = recordingLogger();
  const n = serviceNotifier(log, { NOTIFY_SOCKET: path });
  t.equal(n.enabled, true);
  n.ready('serving; took over 2 mounts');
  const first = await r.next();
  t.equal(first.data, `MAINPID=${process.pid}\nREADY=1\nSTATUS=serving; took over 2 mounts`);
  t.equal(first.pid, process.pid, 'the kernel names this process as the sender (what systemd checks)');
  n.stopping();
  t.match((await r.next()).data, /^STOPPING=1\n/);
});

t.test('an @abstract NOTIFY_SOCKET is reached in the abstract namespace', async (t) => {
  const name = `@clip-notify-test-${randomBytes(6).toString('hex')}`;
  const r = await receiver(t, name);
  const { log } = recordingLogger();
  serviceNotifier(log, { NOTIFY_SOCKET: name }, undefined, 4242).ready('serving');
  t.equal((await r.next()).data, 'MAINPID=4242\nREADY=1\nSTATUS=serving', 'the MAINPID given, not necessarily the sender');
});

t.test('without NOTIFY_SOCKET nothing is sent', async (t) => {
  const sent: string[] = [];
  const { log, records } = recordingLogger();
  const n = serviceNotifier(log, {}, (_p, m) => sent.push(m));
  t.equal(n.enabled, false);
  n.ready('serving');
  n.stopping();
  t.same(sent, []);
  t.same(records, []);
});

t.test('a failed send is logged with CLIP_SERVICE_NOTIFY_FAILED, never thrown', async (t) => {
  const { log, records } = recordingLogger();
  const n = serviceNotifier(log, { NOTIFY_SOCKET: join(dir, 'nobody-listens') });
  t.doesNotThrow(() => n.ready('serving'));
  const failed = records.find((r) => r.code === 'CLIP_SERVICE_NOTIFY_FAILED');
  t.ok(failed, 'the failure is logged with its code');
  t.match(String(failed?.err), /ENOENT|No such file/);
  const bad = recordingLogger();
  serviceNotifier(bad.log, { NOTIFY_SOCKET: 'relative/notify' }).ready('serving');
  t.ok(bad.records.some((r) => r.code === 'CLIP_SERVICE_NOTIFY_FAILED'), 'a relative NOTIFY_SOCKET is refused');
});

t.test('the addon checks its arguments', async (t) => {
  t.throws(() => fusedev().sdNotify('notify', 'READY=1'), { code: 'CLIP_FUSEDEV_ARGS' }, 'a relative path');
  t.throws(() => fusedev().sdNotify('@', 'READY=1'), { code: 'CLIP_FUSEDEV_ARGS' }, 'an empty abstract name');
  t.throws(() => fusedev().sdNotify(join(dir, 'x'), ''), { code: 'CLIP_FUSEDEV_ARGS' }, 'an empty message');
  t.throws(() => fusedev().sdNotify(`/${'a'.repeat(200)}`, 'READY=1'), { code: 'CLIP_FUSEDEV_ARGS' }, 'a path longer than sun_path');
});
