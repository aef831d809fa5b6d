import t from 'tap';
import { isKind } from '../../src/errors/index.js';
import { apiHostOf, formatReference, isLoopbackHost, parseReference, toRepositoryRef } from '../../src/registry/index.js';

const D = `sha256:${'ab'.repeat(32)}`;

t.test('normalises like containerd', async (t) => {
  t.same(parseReference('alpine'), { domain: 'docker.io', repository: 'library/alpine', tag: 'latest' });
  t.same(parseReference('user/app:1.2'), { domain: 'docker.io', repository: 'user/app', tag: '1.2' });
  t.same(parseReference('index.docker.io/library/alpine:3'), { domain: 'docker.io', repository: 'library/alpine', tag: '3' });
  t.same(parseReference(`localhost:5000/x@${D}`), { domain: 'localhost:5000', repository: 'x', digest: D });
  t.same(parseReference(`reg.example/a/b/c:t@${D}`), { domain: 'reg.example', repository: 'a/b/c', tag: 't', digest: D });
  t.same(parseReference('localhost/app'), { domain: 'localhost', repository: 'app', tag: 'latest' });
  t.equal(formatReference(parseReference('alpine')), 'docker.io/library/alpine:latest');
  t.equal(apiHostOf('docker.io'), 'registry-1.docker.io');
  t.equal(apiHostOf('127.0.0.1:5000'), '127.0.0.1:5000');
});

t.test('rejects malformed references with invalid_argument', async (t) => {
  for (const bad of ['', 'docker.io/UPPER', 'a//b', 'app:', 'app@sha256:xyz', 'app:bad tag', '-lead', `x/${'a'.repeat(300)}`]) {
    const err = (() => { try { parseReference(bad); return undefined; } catch (e) { return e; } })();
    t.ok(isKind(err, 'invalid_argument'), `"${bad.slice(0, 20)}" is invalid_argument`);
  }
});

t.test('repository refs and loopback detection', async (t) => {
  t.same(toRepositoryRef('127.0.0.1:5000/lib/app'), { domain: '127.0.0.1:5000', repository: 'lib/app' });
  t.same(toRepositoryRef('127.0.0.1:5000/lib/app:tag'), { domain: '127.0.0.1:5000', repository: 'lib/app' });
  t.same(toRepositoryRef('busybox'), { domain: 'docker.io', repository: 'library/busybox' });
  t.ok(isLoopbackHost('localhost:5000'));
  t.ok(isLoopbackHost('127.0.0.1'));
  t.ok(isLoopbackHost('[::1]:5000'));
  t.notOk(isLoopbackHost('docker.io'));
});
