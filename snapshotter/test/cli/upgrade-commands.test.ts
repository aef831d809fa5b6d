/**
 * The CLI around an in-place FUSE-server upgrade: the fuse-server flags' values are checked (exit
 * 2), `ready FILE` (a pod's readiness probe) is true only for a live pid, and `upgrade-fuse-server`
 * fails with CLIP_FUSE_UPGRADE_FAILED when no server runs or its successor gives up — here a real
 * `fuse-server --take-over` of this build against a stand-in server that refuses the hand-over.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { upgradeFuseServer } from '../../src/cli/upgrade-fuse-server-command.js';
import { parseConfig } from '../../src/config/index.js';
import { findClipError, unavailable } from '../../src/errors/index.js';
import { FrameDecoder, encodeFrame } from '../../src/fuseserver/frames.js';
import { toWireError } from '../../src/fuseserver/protocol.js';

const LAUNCHER = fileURLToPath(new URL('../../../../snapshotter/bin/clip-snapshotter', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'clip-upgrade-cli-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

// The CLI as an operator runs it, without tap's loader in NODE_OPTIONS.
function cli(args: string[]): { code: number | null; stderr: string } {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, [LAUNCHER, ...args], { encoding: 'utf8', env, timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

t.test('fuse-server flag values are checked before anything starts', async (t) => {
  for (const [args, why] of [
    [['--take-over=sometimes'], /--take-over=sometimes: expected one of required, auto/],
    [['--after-hand-over=never'], /--after-hand-over=never: expected one of exit, wait/],
    [['--ready-file', 'relative/ready'], /--ready-file must be an absolute path/],
  ] as const) {
    const r = cli(['fuse-server', '--root', join(dir, 'root'), '--address', join(dir, 'never.sock'), ...args]);
    t.equal(r.code, 2, `${args.join(' ')}: usage error`);
    t.match(r.stderr, why);
  }
});

t.test('ready FILE: exit 0 only while FILE names a live process', async (t) => {
  const file = join(dir, 'ready');
  t.equal(cli(['ready']).code, 2, 'no file: usage');
  t.equal(cli(['ready', 'relative']).code, 2, 'a relative file: usage');
  t.equal(cli(['ready', file]).code, 1, 'no file yet: not ready');
  await writeFile(file, `${process.pid}\n`);
  t.equal(cli(['ready', file]).code, 0, 'a live pid: ready');
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  await writeFile(file, `${gone.stdout}\n`);
  t.equal(cli(['ready', file]).code, 1, 'a pid that exited: not ready');
  await writeFile(file, 'not a pid\n');
  t.equal(cli(['ready', file]).code, 1, 'garbage: not ready');
});

t.test('upgrade-fuse-server without a running server fails, starting nothing', async (t) => {
  const cfg = parseConfig(`root = "${dir}/none/root"\naddress = "${dir}/none/clip.sock"\n`, 'test.toml');
  const err = await upgradeFuseServer(cfg, [], { launcher: LAUNCHER }).then(() => undefined, (e: unknown) => e);
  t.equal(findClipError(err)?.code, 'CLIP_FUSE_UPGRADE_FAILED');
  t.match(String((err as Error).message), /no FUSE server runs/);
  const r = cli(['upgrade-fuse-server', '--root', join(dir, 'none', 'root'), '--address', join(dir, 'none', 'clip.sock')]);
  t.equal(r.code, 1, 'the command exits 1 (a reload fails)');
});

t.test('upgrade-fuse-server reports a successor that gave up; the old server is untouched', async (t) => {
  const base = join(dir, 'refusing');
  const cfg = parseConfig(`root = "${base}/root"\naddress = "${base}/clip.sock"\nlog_level = "silent"\n[fuse_server]\ndriver = "kernel"\n`, 'test.toml');
  await rm(base, { recursive: true, force: true });
  await mkdir(base, { recursive: true });
  // A stand-in FUSE server (this process, per the pid file) that refuses every hand-over.
  let asked = 0;
  const server = createServer((sock) => {
    const dec = new FrameDecoder();
    sock.on('data', (chunk: Buffer) => {
      for (const m of dec.push(chunk) as Array<{ id: number; method: string }>) {
        if (m.method === 'handover') asked++;
        sock.write(encodeFrame({ id: m.id, error: toWireError(unavailable('CLIP_FUSE_HANDOVER_FAILED', 'libfuse-driver mounts cannot be handed over')) }));
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(join(base, 'fuse.sock'), resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  await writeFile(join(base, 'fuse-server.pid'), `${process.pid}\n`);
  const env = process.env.NODE_OPTIONS;
  delete process.env.NODE_OPTIONS;
  const err = await upgradeFuseServer(cfg, ['--root', `${base}/root`, '--address', `${base}/clip.sock`, '--log-level', 'silent'], { launcher: LAUNCHER, deadlineMs: 120_000 }).then(() => undefined, (e: unknown) => e);
  if (env !== undefined) process.env.NODE_OPTIONS = env;
  t.equal(findClipError(err)?.code, 'CLIP_FUSE_UPGRADE_FAILED', String(err));
  t.match(String((err as Error).message), /ended with exit code 1 before taking over/);
  t.equal(asked, 1, 'the successor asked the running server to hand over');
});
