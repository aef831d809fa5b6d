// The pull command's one-file bundle: built from the compiled command, self-contained, loadable
// and working, and chosen only when it is not older than the compiled sources.
import t from 'tap';
import { readFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundlePullCommand, esbuildAvailable } from '../../src/cli/bundle-pull-command.js';
import { PULL_BUNDLE_URL, PULL_COMMAND_URL, pullModuleChoice, type PullModule } from '../../src/cli/pull-bundle.js';

t.test('the bundle sits beside the compiled command, so import.meta.url paths resolve the same', async (t) => {
  t.equal(new URL('.', PULL_BUNDLE_URL).href, new URL('.', PULL_COMMAND_URL).href);
});

// A worktree whose node_modules predate the dev dependency says so instead of failing (`make deps` installs it).
const noEsbuild = (await esbuildAvailable()) ? false : 'esbuild is not installed: run `make deps`';

t.test('bundling yields one self-contained module that runs the command', { skip: noEsbuild }, async (t) => {
  // Written beside the compiled command (as `make build` does), under a name of its own.
  const out = new URL(`./pull-command.test-${process.pid}.bundle.mjs`, PULL_COMMAND_URL);
  t.teardown(() => import('node:fs/promises').then((fs) => fs.rm(out, { force: true })));
  await bundlePullCommand(undefined, out.pathname);
  const text = await readFile(out, 'utf8');
  // Only built-in modules are imported: every package the command uses is inside.
  const imports = [...text.matchAll(/^import .* from ["']([^"']+)["'];?$/gm)].map((m) => m[1]);
  t.ok(imports.length > 0);
  t.same(imports.filter((s) => !s?.startsWith('node:') && !['fs', 'path', 'os', 'url', 'util', 'net', 'http', 'http2', 'tls', 'crypto', 'stream', 'events', 'zlib', 'dns', 'buffer'].includes(s ?? '')), [], 'no import of a package or a relative file');
  t.match(text, /@grpc\/grpc-js|grpc-js/, 'grpc-js is inside');
  const mod = (await import(out.href)) as PullModule;
  t.type(mod.pullCommand, 'function');
  // The bundled command parses its arguments like the module graph's: a usage error exits 2.
  const stderr = process.stderr.write;
  let said = '';
  process.stderr.write = ((s: string) => ((said += s), true)) as typeof process.stderr.write;
  try {
    t.equal(await mod.pullCommand([]), 2);
  } finally {
    process.stderr.write = stderr;
  }
  t.match(said, /exactly one IMAGE_REF is required/);
});

t.test('the bundle is used only when it is not older than the compiled command', async (t) => {
  const dir = t.testdir({ 'pull-command.js': '', 'pull-command.bundle.mjs': '' });
  const compiled = pathToFileURL(join(dir, 'pull-command.js'));
  const bundle = pathToFileURL(join(dir, 'pull-command.bundle.mjs'));
  await utimes(compiled, 1000, 1000);
  await utimes(bundle, 2000, 2000);
  t.same(pullModuleChoice(bundle, compiled), { url: bundle }, 'bundled after the compile: the bundle');
  await utimes(compiled, 3000, 3000);
  const stale = pullModuleChoice(bundle, compiled);
  t.equal(stale.url.href, compiled.href, 'compiled again since: the module graph');
  t.match(stale.stale ?? '', /older than the compiled sources/);
  const none = pullModuleChoice(pathToFileURL(join(dir, 'absent.mjs')), compiled);
  t.equal(none.url.href, compiled.href);
  t.match(none.stale ?? '', /no bundle/);
});
