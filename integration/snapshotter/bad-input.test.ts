// Bad requests get containerd's gRPC codes and clear messages, and change nothing (issue 2, item 7).
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { spawnSync } from 'node:child_process';
import { access, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createHarness, SNAPSHOTTER_BIN } from '../harness/index.js';
import { SnapshotsClient } from './snapshots-client.js';

t.test('gRPC error codes over the wire', async (t) => {
  const h = createHarness(t, 'clip-bad-input-');
  const d = await h.startSnapshotter();
  const c = new SnapshotsClient(d.address);
  t.teardown(() => c.close());

  await c.call('Prepare', { key: 'base', parent: '' });
  await c.call('Commit', { name: 'BASE', key: 'base', labels: { a: '1' } });
  await c.call('Prepare', { key: 'active', parent: 'BASE' });
  const before = JSON.stringify(await c.list());

  const cases: Array<[string, string, Record<string, unknown>, number, RegExp]> = [
    ['missing parent', 'Prepare', { key: 'k', parent: 'nope' }, status.NOT_FOUND, /parent snapshot "nope": not found/],
    ['uncommitted parent', 'Prepare', { key: 'k', parent: 'active' }, status.INVALID_ARGUMENT, /not a committed snapshot/],
    ['existing key', 'Prepare', { key: 'active', parent: '' }, status.ALREADY_EXISTS, /"active": already exists/],
    ['oversized label', 'Prepare', { key: 'k', labels: { big: 'x'.repeat(4094) } }, status.INVALID_ARGUMENT, /4096 bytes/],
    ['commit of a committed key', 'Commit', { name: 'X', key: 'BASE' }, status.FAILED_PRECONDITION, /not active/],
    ['commit of a missing key', 'Commit', { name: 'X', key: 'nope' }, status.NOT_FOUND, /not found/],
    ['commit to a taken name', 'Commit', { name: 'BASE', key: 'active' }, status.ALREADY_EXISTS, /already exists/],
    ['remove of a parent', 'Remove', { key: 'BASE' }, status.FAILED_PRECONDITION, /with children/],
    ['remove of a missing key', 'Remove', { key: 'nope' }, status.NOT_FOUND, /not found/],
    ['mounts of a committed snapshot', 'Mounts', { key: 'BASE' }, status.FAILED_PRECONDITION, /committed/],
    ['stat of a missing key', 'Stat', { key: 'nope' }, status.NOT_FOUND, /not found/],
    ['bad update path', 'Update', { info: { name: 'BASE', labels: {} }, update_mask: { paths: ['parent'] } }, status.INVALID_ARGUMENT, /cannot update "parent"/],
    ['update of a missing snapshot', 'Update', { info: { name: 'nope' } }, status.NOT_FOUND, /not found/],
    ['usage of a missing key', 'Usage', { key: 'nope' }, status.NOT_FOUND, /not found/],
  ];
  for (const [name, method, req, code, re] of cases) {
    const got = await c.codeOf(method, req);
    t.equal(got.code, code, `${name}: code ${code}`);
    t.match(got.details, re, `${name}: message`);
  }
  const listErr = await c.list(['labels."unterminated']).then(
    () => undefined,
    (e: { code: number; details: string }) => e,
  );
  t.equal(listErr?.code, status.INVALID_ARGUMENT, 'malformed filter: INVALID_ARGUMENT');
  t.match(listErr?.details, /unterminated quoted string/);
  t.equal(JSON.stringify(await c.list()), before, 'state unchanged by every rejected call');
});

t.test('start-up errors: bad config and flags', async (t) => {
  const h = createHarness(t, 'clip-bad-input-');
  const tmp = { dir: h.root, ...h.snapshotterPaths, socket: h.snapshotterPaths.address };
  const cfg = join(tmp.dir, 'bad.toml');
  const run = (args: string[]) =>
    spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, SNAPSHOTTER_BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
  await writeFile(cfg, '[registry]\nconfig_pth = "/x"\n');
  let r = run(['serve', '--config', cfg, '--root', tmp.root, '--address', tmp.socket]);
  t.equal(r.status, 2);
  t.match(r.stderr, new RegExp(`config ${cfg}: unknown key "registry.config_pth"`));
  await writeFile(cfg, 'log_level = 3\n');
  r = run(['serve', '--config', cfg, '--root', tmp.root, '--address', tmp.socket]);
  t.equal(r.status, 2);
  t.match(r.stderr, /"log_level" must be a string/);
  r = run(['serve', '--config', join(tmp.dir, 'missing.toml')]);
  t.equal(r.status, 2);
  t.match(r.stderr, /missing\.toml: not found/);
  r = run(['serve', '--bogus']);
  t.equal(r.status, 2);
  r = run(['frobnicate']);
  t.equal(r.status, 2);
  t.match(r.stderr, /unknown command "frobnicate"/);
  t.notOk(await access(tmp.socket).then(() => true, () => false), 'no socket left by failed starts');
});

t.test('socket: mode 0600, stale file replaced', async (t) => {
  const h = createHarness(t, 'clip-bad-input-');
  const socket = h.snapshotterPaths.address;
  await mkdir(dirname(socket), { recursive: true });
  // A regular file where the socket goes: the daemon itself must replace it (the harness does not).
  await writeFile(socket, 'stale');
  await h.startSnapshotter();
  const st = await stat(socket);
  t.ok(st.isSocket(), 'stale file replaced by a socket');
  t.equal(st.mode & 0o777, 0o600);
  const c = new SnapshotsClient(socket);
  t.same(await c.list(), []);
  c.close();
});
