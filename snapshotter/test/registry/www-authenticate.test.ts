import t from 'tap';
import { parseRetryAfter, parseWwwAuthenticate } from '../../src/registry/index.js';

t.test('parses bearer and basic challenges', async (t) => {
  t.same(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull,push' } },
  ]);
  t.same(parseWwwAuthenticate('Basic realm="a \\"quoted\\" realm", Bearer realm=http://x/t'), [
    { scheme: 'basic', params: { realm: 'a "quoted" realm' } },
    { scheme: 'bearer', params: { realm: 'http://x/t' } },
  ]);
  t.same(parseWwwAuthenticate(undefined), []);
  t.same(parseWwwAuthenticate('Bearer realm="unterminated'), [{ scheme: 'bearer', params: { realm: 'unterminated' } }]);
});

t.test('Retry-After as seconds or a date', async (t) => {
  t.equal(parseRetryAfter('3'), 3000);
  t.equal(parseRetryAfter(undefined), undefined);
  t.equal(parseRetryAfter('soon'), undefined);
  const now = Date.UTC(2026, 0, 2, 3, 4, 5); // a whole second: HTTP dates carry no milliseconds
  t.equal(parseRetryAfter(new Date(now + 5000).toUTCString(), now), 5000);
  t.equal(parseRetryAfter(new Date(now - 5000).toUTCString(), now), 0, 'a date in the past: retry now');
});
