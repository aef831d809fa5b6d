import t from 'tap';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, loadConfig, parseConfig } from '../../src/config/index.js';
import { ClipError } from '../../src/errors/index.js';

t.test('defaults', async (t) => {
  const c = defaultConfig();
  t.equal(c.root, '/var/lib/clip-snapshotter');
  t.equal(c.address, '/run/clip-snapshotter/clip.sock');
  t.equal(c.contentCache.backend, 'none');
  t.equal(c.index.buildMissing, true);
  t.equal(c.tracing.protocol, 'http/protobuf');
});

t.test('values from the file', async (t) => {
  const c = parseConfig(
    `root = "/srv/clip"\nlog_level = "debug"\n[registry]\nconfig_path = "/etc/containerd/certs.d"\nplain_http = true\n[content_cache]\nbackend = "redis"\naddresses = ["10.0.0.1:6379"]\nkey_file = "/etc/clip/cluster.key"\n`,
    'x.toml',
  );
  t.equal(c.root, '/srv/clip');
  t.equal(c.logLevel, 'debug');
  t.equal(c.registry.configPath, '/etc/containerd/certs.d');
  t.equal(c.registry.plainHttp, true);
  t.same(c.contentCache.addresses, ['10.0.0.1:6379']);
});

t.test('span bounds and the foreign-index switches', async (t) => {
  const d = parseConfig('', 'x.toml');
  t.match(d.index, { maxSpanBytes: 64 << 20, maxSpanCompressedBytes: 64 << 20, acceptForeignIndexes: true, checkForeignIndexes: true });
  const c = parseConfig('[index]\nmax_span_bytes = 1048576\nmax_span_compressed_bytes = 2097152\naccept_foreign_indexes = false\ncheck_foreign_indexes = false\ncheckpoint_span_bytes = 65536\n', 'x.toml');
  t.match(c.index, { maxSpanBytes: 1 << 20, maxSpanCompressedBytes: 2 << 20, acceptForeignIndexes: false, checkForeignIndexes: false });
});

t.test('[fuse_server] start: with the daemon by default, or at the first lazy mount', async (t) => {
  t.equal(parseConfig('', 'x.toml').fuseServer.start, 'with_daemon');
  t.equal(parseConfig('[fuse_server]\nstart = "first_mount"\n', 'x.toml').fuseServer.start, 'first_mount');
});

const bad: Array<[string, string, RegExp]> = [
  ['unknown top-level key', 'bogus = 1', /x\.toml: unknown key "bogus"/],
  ['unknown key in a section', '[registry]\nfoo = "x"', /unknown key "registry\.foo"/],
  ['unknown section', '[nope]\na = 1', /unknown key "nope"/],
  ['wrong type', 'root = 5', /"root" must be a string, got 5/],
  ['bad value', 'log_level = "loud"', /"log_level" must be one of/],
  ['relative path', 'root = "rel/dir"', /"root" must be an absolute path/],
  ['bad enum in section', '[content_cache]\nbackend = "memcached"', /"content_cache\.backend" must be one of/],
  ['bad address list', '[content_cache]\naddresses = ["nohost"]', /"content_cache\.addresses"/],
  ['section not a table', 'registry = 3', /"registry" must be a table/],
  ['syntax error', 'root = ', /config x\.toml \(line 1/],
  ['ratio out of range', '[tracing]\nsample_ratio = 2.0', /between 0 and 1/],
  ['span bound too small', '[index]\nmax_span_bytes = 1024', /x\.toml: "index\.max_span_bytes" must be between 65536 and 1073741824, got 1024/],
  ['span bound over the addon cap', '[index]\nmax_span_compressed_bytes = 2147483648', /"index\.max_span_compressed_bytes" must be between 65536 and 1073741824/],
  ['FUSE server start not one of the two', '[fuse_server]\nstart = "later"', /"fuse_server\.start" must be one of/],
  ['FUSE server heap limit too small', '[fuse_server]\nmax_old_space_mb = 16', /"fuse_server\.max_old_space_mb" must be 0 \(V8's default\) or between 64 and 65536/],
  ['checkpoint spans over the span bound', '[index]\ncheckpoint_span_bytes = 1048576\nmax_span_bytes = 524288', /x\.toml: index\.checkpoint_span_bytes \(1048576\) must not exceed index\.max_span_bytes \(524288\)/],
];
for (const [name, text, re] of bad) {
  t.test(`rejects: ${name}`, async (t) => {
    const err = t.throws(() => parseConfig(text, 'x.toml')) as unknown as ClipError;
    t.ok(err instanceof ClipError);
    t.equal(err.kind, 'invalid_argument');
    t.match(err.message, re);
  });
}

t.test('loadConfig: missing default file is fine, missing explicit file is not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-cfg-'));
  t.teardown(() => import('node:fs/promises').then((f) => f.rm(dir, { recursive: true, force: true })));
  const c = await loadConfig(join(dir, 'absent.toml'), true);
  t.equal(c.root, '/var/lib/clip-snapshotter');
  await t.rejects(loadConfig(join(dir, 'absent.toml'), false), /absent\.toml: not found/);
  await writeFile(join(dir, 'c.toml'), 'address = "/tmp/x.sock"\n');
  t.equal((await loadConfig(join(dir, 'c.toml'), false)).address, '/tmp/x.sock');
});

t.test('the sample plugin-config/config.toml is valid, complete and says the defaults', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const { SCHEMA } = await import('../../src/config/index.js');
  const path = new URL('../../../../plugin-config/config.toml', import.meta.url);
  const text = await readFile(path, 'utf8');
  t.same(parseConfig(text, 'sample'), defaultConfig());
  for (const section of SCHEMA) {
    for (const f of section.fields) {
      const header = section.toml === '' ? '' : `[${section.toml}]`;
      const at = header === '' ? 0 : text.indexOf(header);
      t.ok(at >= 0 && new RegExp(`^${f.toml} =`, 'm').test(text.slice(at)), `sample documents ${section.toml || '<top>'}.${f.toml}`);
    }
  }
});

t.test('the Kubernetes ConfigMap carries a valid config', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const yaml = await readFile(new URL('../../../../plugin-config/kubernetes/configmap.yaml', import.meta.url), 'utf8');
  const body = yaml.split('config.toml: |\n')[1] ?? '';
  const toml = body
    .split('\n')
    .map((l) => l.replace(/^ {4}/, ''))
    .join('\n');
  const c = parseConfig(toml, 'configmap.yaml');
  t.equal(c.contentCache.backend, 'redis');
  t.equal(c.containerdNamespace, 'k8s.io', 'CRI’s namespace');
});

t.test('Kubernetes: the ContentCache is keyed, and the key file is where the FUSE server DaemonSet mounts its Secret', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const { parseAllDocuments } = await import('yaml');
  const root = new URL('../../../../plugin-config/kubernetes/', import.meta.url);
  const configmap = await readFile(new URL('configmap.yaml', root), 'utf8');
  const toml = (configmap.split('config.toml: |\n')[1] ?? '').split('\n').map((l) => l.replace(/^ {4}/, '')).join('\n');
  const keyFile = parseConfig(toml, 'configmap.yaml').contentCache.keyFile;
  t.match(keyFile, /^\/.+\/[^/]+$/, `key_file is set (${keyFile})`);
  const daemonsets = parseAllDocuments(await readFile(new URL('daemonset.yaml', root), 'utf8')).map((d) => d.toJS() as {
    metadata: { name: string };
    spec: { template: { spec: { containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }> }>; volumes: Array<{ name: string; secret?: { secretName: string; defaultMode?: number; items?: Array<{ key: string; path: string }> } }> } } };
  });
  const pod = daemonsets.find((d) => d.metadata.name === 'clip-snapshotter-fuse')!.spec.template.spec;
  const dir = keyFile.slice(0, keyFile.lastIndexOf('/'));
  const mount = pod.containers[0]!.volumeMounts.find((m) => m.mountPath === dir);
  t.ok(mount?.readOnly, `${dir} is mounted read-only into the FUSE server`);
  const secret = pod.volumes.find((v) => v.name === mount?.name)?.secret;
  t.ok(secret?.secretName, `from a Secret (${secret?.secretName})`);
  t.equal(secret?.defaultMode, 0o400, 'readable by its owner only');
  t.ok(secret?.items?.some((i) => i.path === keyFile.slice(dir.length + 1)), 'whose item is the file key_file names');
  const daemon = daemonsets.find((d) => d.metadata.name === 'clip-snapshotter')!.spec.template.spec;
  t.notOk(daemon.volumes.some((v) => v.secret?.secretName === secret?.secretName), 'the daemon, which never reads Redis, does not get the key');
});

t.test('Kubernetes: uncommenting the credential-provider keys and their DaemonSet mounts gives paths the FUSE server sees', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const { parseAllDocuments } = await import('yaml');
  const root = new URL('../../../../plugin-config/kubernetes/', import.meta.url);
  const uncomment = (text: string, re: RegExp): string => text.split('\n').map((l) => (re.test(l) ? l.replace(/^(\s*)# /, '$1') : l)).join('\n');
  const configmap = uncomment(await readFile(new URL('configmap.yaml', root), 'utf8'), /^\s*# credential_provider_/);
  const toml = (configmap.split('config.toml: |\n')[1] ?? '').split('\n').map((l) => l.replace(/^ {4}/, '')).join('\n');
  const c = parseConfig(toml, 'configmap.yaml');
  const { credentialProviderConfig: file, credentialProviderBinDir: dir } = c.registry;
  t.ok(file && dir, `the ConfigMap documents both keys (${file}, ${dir})`);
  const daemonsets = parseAllDocuments(uncomment(await readFile(new URL('daemonset.yaml', root), 'utf8'), /^\s*# - \{ name: credential-provider/)).map((d) => d.toJS() as {
    metadata: { name: string };
    spec: { template: { spec: { containers: Array<{ volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }> }>; volumes: Array<{ name: string; hostPath?: { path: string; type: string } }> } } };
  });
  const fuse = daemonsets.find((d) => d.metadata.name === 'clip-snapshotter-fuse');
  t.ok(fuse, 'the FUSE server DaemonSet (the process that reads registries)');
  const pod = fuse!.spec.template.spec;
  for (const path of [file!, dir!]) {
    const mount = pod.containers[0]!.volumeMounts.find((m) => m.mountPath === path);
    t.ok(mount?.readOnly, `${path} is mounted read-only into the FUSE server`);
    const volume = pod.volumes.find((v) => v.name === mount?.name);
    t.equal(volume?.hostPath?.path, path, `from the same host path (the kubelet's)`);
  }
});
