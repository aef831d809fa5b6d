import t from 'tap';
import { parsePlatform, platformMatches, selectPlatformManifest, type Descriptor } from '../../src/registry/index.js';

const d = (n: number, os: string, architecture: string, variant?: string): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: 1,
  platform: { os, architecture, ...(variant ? { variant } : {}) },
});

t.test('platform parsing and matching', async (t) => {
  t.same(parsePlatform('linux/amd64'), { os: 'linux', architecture: 'amd64', variant: 'v1' });
  t.same(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  t.throws(() => parsePlatform('linux'));
  t.ok(platformMatches({ os: 'linux', architecture: 'arm64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }));
  t.notOk(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'arm', variant: 'v6' }));
  const list = [d(1, 'unknown', 'unknown'), d(2, 'linux', 'arm', 'v6'), d(3, 'linux', 'arm', 'v7'), d(4, 'linux', 'amd64'), d(5, 'windows', 'amd64')];
  t.equal(selectPlatformManifest(list, { os: 'linux', architecture: 'amd64' })?.digest, list[3]?.digest);
  t.equal(selectPlatformManifest(list, parsePlatform('linux/arm/v7'))?.digest, list[2]?.digest);
  t.equal(selectPlatformManifest(list, { os: 'linux', architecture: 's390x' }), undefined);
});
