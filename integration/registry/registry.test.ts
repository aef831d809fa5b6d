import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { isKind, type ErrorKind } from '../../snapshotter/src/errors/index.js';
import {
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  RegistryClient,
  referrersTag,
  sha256Digest,
  type Descriptor,
} from '../../snapshotter/src/registry/index.js';
import { createHarness } from '../harness/index.js';

const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar';
const ARTIFACT_TYPE = 'application/vnd.clip.index.v1';

/** Assert that `p` rejects with a ClipError of `kind` whose message contains `text`. */
async function rejectsKind(t: Test, p: Promise<unknown>, kind: ErrorKind, text = ''): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  t.ok(err !== undefined && isKind(err, kind), `rejects with ${kind}: ${String((err as Error)?.message)}`);
  if (text) t.match(String((err as Error)?.message), text);
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Push a one-layer image; returns the manifest descriptor and the layer bytes. */
async function pushImage(client: RegistryClient, repo: string, tag: string, arch = 'amd64'): Promise<{ manifest: Descriptor; layer: Buffer; layerDesc: Descriptor }> {
  const layer = Buffer.alloc(300_000);
  for (let i = 0; i < layer.length; i++) layer[i] = (i * 31 + arch.length) & 0xff;
  const layerDesc = await client.pushBlob(repo, { type: 'bytes', data: layer }, { mediaType: LAYER_TYPE, chunkSizeBytes: 64 * 1024 });
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDesc.digest] } }));
  const configDesc = await client.pushBlob(repo, { type: 'bytes', data: config }, { mediaType: 'application/vnd.oci.image.config.v1+json' });
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_MANIFEST, config: configDesc, layers: [layerDesc] }));
  return { manifest: await client.pushManifest(repo, manifest, MEDIA_TYPE_OCI_MANIFEST, tag), layer, layerDesc };
}

t.test('push, resolve, fetch, ranges and referrers against docker-registry', async (t) => {
  const reg = await createHarness(t, 'clip-registry-').startRegistry();
  const client = new RegistryClient({ maxRetries: 1 });
  t.teardown(() => client.close());
  const repo = `${reg.host}/clip/test`;

  const { manifest, layer, layerDesc } = await pushImage(client, repo, 'v1');
  t.equal(layerDesc.digest, sha256Digest(layer));
  const resolved = await client.resolveImage(`${repo}:v1`);
  t.equal(resolved.descriptor.digest, manifest.digest, 'tag resolves to the pushed manifest');
  t.equal(resolved.manifest.layers[0]?.digest, layerDesc.digest);

  const whole = await client.fetchBlob(repo, layerDesc.digest, { size: layer.length });
  t.ok((await collect(whole.stream)).equals(layer), 'whole blob round-trips');
  const part = await client.fetchBlob(repo, layerDesc.digest, { range: { offset: 1000, length: 5000 } });
  t.equal(part.size, layer.length);
  t.ok((await collect(part.stream)).equals(layer.subarray(1000, 6000)), 'range read returns exactly the bytes');
  const tail = await client.fetchBlob(repo, layerDesc.digest, { range: { offset: layer.length - 10, length: 100 } });
  t.equal(tail.length, 10, 'a range past the end is cut to the blob');

  const streamed = Buffer.from('streamed blob '.repeat(10_000));
  const sDesc = await client.pushBlob(repo, { type: 'stream', stream: Readable.from([streamed.subarray(0, 7), streamed.subarray(7)]) }, { chunkSizeBytes: 50_000 });
  t.equal(sDesc.digest, sha256Digest(streamed), 'stream upload computes the digest');
  t.ok((await client.fetchBlobBytes(repo, sDesc.digest)).equals(streamed));
  t.same(await client.statBlob(repo, sDesc.digest), { size: streamed.length });

  const missing = `sha256:${'0'.repeat(64)}`;
  await rejectsKind(t, client.fetchBlob(repo, missing), 'not_found', reg.host);
  t.equal(await client.statBlob(repo, missing), undefined);
  await rejectsKind(t, client.resolve(`${repo}:nope`), 'not_found', 'nope');

  t.same(await client.findReferrers(repo, manifest.digest, ARTIFACT_TYPE), [], 'no referrers yet');
  const artifact = await client.pushArtifact({
    repo, subject: manifest, artifactType: ARTIFACT_TYPE,
    blobs: [{ mediaType: 'application/vnd.clip.index.layer.v1', data: Buffer.from('index-bytes'), annotations: { 'clip.layer': layerDesc.digest } }],
    annotations: { 'clip.version': '1' },
  });
  const other = await client.pushArtifact({ repo, subject: manifest, artifactType: 'application/x-other', blobs: [] });
  const again = await client.pushArtifact({
    repo, subject: manifest, artifactType: ARTIFACT_TYPE,
    blobs: [{ mediaType: 'application/vnd.clip.index.layer.v1', data: Buffer.from('index-bytes'), annotations: { 'clip.layer': layerDesc.digest } }],
    annotations: { 'clip.version': '1' },
  });
  t.equal(again.digest, artifact.digest, 'pushing the same artifact twice is idempotent');
  const found = await client.findReferrers(repo, manifest.digest, ARTIFACT_TYPE);
  t.same(found.map((d) => d.digest), [artifact.digest], 'found through the tag fallback, filtered by artifactType');
  t.equal(found[0]?.annotations?.['clip.version'], '1');
  t.equal((await client.findReferrers(repo, manifest.digest)).length, 2, 'unfiltered lists both referrers');
  const tagIndex = await client.fetchManifest(repo, referrersTag(manifest.digest));
  t.equal(tagIndex.type, 'index');
  const art = await client.fetchManifest(repo, artifact.digest);
  t.ok(art.type === 'manifest' && art.manifest.subject?.digest === manifest.digest && art.manifest.artifactType === ARTIFACT_TYPE);
  t.ok(other.digest !== artifact.digest);

  const log = await readFile(reg.logPath, 'utf8');
  t.match(log, `/v2/clip/test/blobs/${layerDesc.digest}`, 'access log records blob fetches');
  t.match(log, `/v2/clip/test/referrers/${manifest.digest}`, 'the referrers API was tried first');
  t.match(log, '"PATCH /v2/clip/test/blobs/uploads/', 'the layer went up in chunks');
});

t.test('platform selection from an OCI index', async (t) => {
  const reg = await createHarness(t, 'clip-registry-').startRegistry();
  const client = new RegistryClient({ maxRetries: 1 });
  t.teardown(() => client.close());
  const repo = `${reg.host}/multi`;
  const amd = await pushImage(client, repo, 'amd', 'amd64');
  const arm = await pushImage(client, repo, 'arm', 'arm64');
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX,
    manifests: [
      { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
      { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
  }));
  const root = await client.pushManifest(repo, index, MEDIA_TYPE_OCI_INDEX, 'latest');
  const def = await client.resolveImage(repo);
  t.equal(def.root.digest, root.digest);
  t.equal(def.descriptor.digest, amd.manifest.digest, 'linux/amd64 by default');
  const a = await client.resolveImage(`${repo}:latest`, { platform: 'linux/aarch64' });
  t.equal(a.descriptor.digest, arm.manifest.digest, 'aarch64 matches arm64/v8');
  await rejectsKind(t, client.resolveImage(repo, { platform: 'linux/s390x' }), 'not_found', 'linux/s390x');
});

t.test('htpasswd registry: basic auth from config and from docker config.json', async (t) => {
  const reg = await createHarness(t, 'clip-registry-').startRegistry({ htpasswd: { username: 'alice', password: 's3cret' } });
  const anon = new RegistryClient({ maxRetries: 0 });
  t.teardown(() => anon.close());
  await rejectsKind(t, anon.pushBlob(`${reg.host}/secure`, { type: 'bytes', data: Buffer.from('x') }), 'failed_precondition', reg.host);

  const wrong = new RegistryClient({ maxRetries: 0, credentials: { [reg.host]: { type: 'basic', username: 'alice', password: 'nope' } } });
  t.teardown(() => wrong.close());
  const denied = await wrong.statBlob(`${reg.host}/secure`, `sha256:${'1'.repeat(64)}`).then(() => undefined, (e: unknown) => e);
  t.ok(isKind(denied, 'failed_precondition'), 'wrong password is failed_precondition');
  t.notMatch(String((denied as Error)?.message), 'nope', 'the password is not in the message');

  const authed = new RegistryClient({ credentials: { [reg.host]: { type: 'basic', username: 'alice', password: 's3cret' } } });
  t.teardown(() => authed.close());
  const { manifest } = await pushImage(authed, `${reg.host}/secure`, 'v1');

  const dir = await mkdtemp(join(tmpdir(), 'clip-dockercfg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [`http://${reg.host}`]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
  const fromFile = new RegistryClient({ dockerConfig: join(dir, 'config.json') });
  t.teardown(() => fromFile.close());
  t.equal((await fromFile.resolve(`${reg.host}/secure:v1`)).descriptor.digest, manifest.digest, 'docker config.json credentials work');
});

t.test('hosts.toml: server and mirror, with fallback to the server', async (t) => {
  const h = createHarness(t, 'clip-registry-');
  const upstream = await h.startRegistry({ name: 'upstream' });
  const mirror = await h.startRegistry({ name: 'mirror' });
  const dir = await mkdtemp(join(tmpdir(), 'clip-hosts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'registry.example'));
  await writeFile(join(dir, 'registry.example', 'hosts.toml'), [
    `server = "http://${upstream.host}"`,
    `[host."http://${mirror.host}"]`,
    '  capabilities = ["pull", "resolve"]',
    '  [host."http://' + mirror.host + '".header]',
    '    x-clip-test = "mirror"',
  ].join('\n'));
  const direct = new RegistryClient();
  t.teardown(() => direct.close());
  const onMirror = await pushImage(direct, `${mirror.host}/lib/app`, 'm');
  const onUpstream = await pushImage(direct, `${upstream.host}/lib/app`, 'u', 'arm64');

  const client = new RegistryClient({ configPath: dir });
  t.teardown(() => client.close());
  t.equal((await client.resolve('registry.example/lib/app:m')).descriptor.digest, onMirror.manifest.digest, 'resolved through the mirror');
  t.equal((await client.resolve('registry.example/lib/app:u')).descriptor.digest, onUpstream.manifest.digest, 'mirror 404 falls back to the server');
  const blob = await client.fetchBlobBytes('registry.example/lib/app', onMirror.layerDesc.digest);
  t.ok(blob.equals(onMirror.layer));
  const pushed = await client.pushBlob('registry.example/lib/app', { type: 'bytes', data: Buffer.from('push goes upstream') });
  t.ok(await direct.statBlob(`${upstream.host}/lib/app`, pushed.digest), 'push uses the server, not the pull-only mirror');
  t.equal(await direct.statBlob(`${mirror.host}/lib/app`, pushed.digest), undefined);
  t.match(await readFile(mirror.logPath, 'utf8'), 'ns=registry.example', 'mirror requests carry ?ns=');
});
