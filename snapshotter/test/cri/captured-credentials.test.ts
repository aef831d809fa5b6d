import t from 'tap';
import { CapturedCredentials, credentialOf } from '../../src/cri/index.js';

const bob = { type: 'basic' as const, username: 'bob', password: 'pw' };

t.test('kept per registry and repository, forgotten after the TTL, renewed by a new pull', async (t) => {
  let now = 0;
  const s = new CapturedCredentials({ ttlMs: 1000, maxEntries: 10, maxBytes: 1024, nowMs: () => now });
  t.ok(s.remember('127.0.0.1:5000', 'team/app', bob));
  t.same(await s.get('127.0.0.1:5000', 'team/app'), bob);
  t.equal(await s.get('127.0.0.1:5000', 'team/other'), undefined, 'another repository gets nothing');
  t.equal(await s.get('127.0.0.1:5000'), undefined, 'no repository, nothing');
  t.equal(await s.get('127.0.0.1:5001', 'team/app'), undefined, 'another host gets nothing');
  now = 900;
  s.remember('127.0.0.1:5000', 'team/app', bob);
  now = 1500;
  t.same(await s.get('127.0.0.1:5000', 'team/app'), bob, 'the second pull renewed it');
  now = 1900;
  t.equal(await s.get('127.0.0.1:5000', 'team/app'), undefined, 'expired');
  t.same(s.stats(), { entries: 0, bytes: 0 });
});

t.test('docker hub aliases share one key', async (t) => {
  const s = new CapturedCredentials({ ttlMs: 1000, maxEntries: 10, maxBytes: 1024 });
  s.remember('docker.io', 'library/busybox', bob);
  t.same(await s.get('registry-1.docker.io', 'library/busybox'), bob);
});

t.test('bounded in entries and bytes: the oldest pull goes first', async (t) => {
  const s = new CapturedCredentials({ ttlMs: 60_000, maxEntries: 2, maxBytes: 20 });
  s.remember('h', 'a', { type: 'basic', username: 'u', password: '1' });
  s.remember('h', 'b', { type: 'basic', username: 'u', password: '2' });
  s.remember('h', 'c', { type: 'basic', username: 'u', password: '3' });
  t.equal(await s.get('h', 'a'), undefined, 'a evicted by count');
  t.ok(await s.get('h', 'b'));
  t.ok(await s.get('h', 'c'));
  s.remember('h', 'd', { type: 'registry_token', token: 'x'.repeat(19) });
  t.equal(await s.get('h', 'b'), undefined, 'b evicted by count');
  t.equal(await s.get('h', 'c'), undefined, 'c evicted by bytes');
  t.ok(await s.get('h', 'd'));
  t.ok(s.stats().bytes <= 20);
  t.notOk(s.remember('h', 'e', { type: 'registry_token', token: 'x'.repeat(21) }), 'one credential over the bound is refused');
  t.equal(await s.get('h', 'e'), undefined);
});

t.test('AuthConfig to Credential', async (t) => {
  t.equal(credentialOf(undefined), undefined);
  t.equal(credentialOf({}), undefined, 'an empty AuthConfig is an anonymous pull');
  t.same(credentialOf({ username: 'u', password: 'p' }), { type: 'basic', username: 'u', password: 'p' });
  t.same(credentialOf({ auth: Buffer.from('u:p:q').toString('base64') }), { type: 'basic', username: 'u', password: 'p:q' });
  t.equal(credentialOf({ auth: Buffer.from('nocolon').toString('base64') }), undefined);
  t.same(credentialOf({ username: 'u', identity_token: 'idt' }), { type: 'identity_token', username: 'u', token: 'idt' });
  t.same(credentialOf({ username: 'u', password: 'p', registry_token: 'rt' }), { type: 'registry_token', token: 'rt' });
});
