// The pull command's one-file bundle: built from the compiled command, self-contained, loadable
// with its code cache and working, and chosen only when it is not older than the compiled sources.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, utimes } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundlePullCommand, esbuildAvailable } from '../../src/cli/bundle-pull-command.js';
import { PULL_BUNDLE_URL, PULL_COMMAND_URL, codeCachePath, pullModuleChoice, runBundle } from '../../src/cli/pull-bundle.js';
import { STATIC_MODULE_URL } from '../../src/containerd/proto.js';

// A worktree whose node_modules predate the dev dependency says so instead of failing (`make deps` installs it).
const noEsbuild = (await esbuildAvailable()) ? false : 'esbuild is not installed: run `make deps`';

t.test('the bundle sits beside the compiled command, so import.meta.url paths resolve the same', async (t) => {
  t.equal(new URL('.', PULL_BUNDLE_URL).href, new URL('.', PULL_COMMAND_URL).href);
});

t.test('bundling yields one self-contained module that runs the command from its code cache', { skip: noEsbuild }, async (t) => {
  // Written beside the compiled command (as `make build` does), under a name of its own.
  const out = fileURLToPath(new URL(`./pull-command.test-${process.pid}.bundle.cjs`, PULL_COMMAND_URL));
  t.teardown(async () => {
    await rm(out, { force: true });
    await rm(codeCachePath(out), { force: true });
  });
  const cacheBytes = await bundlePullCommand(undefined, out);
  t.ok(cacheBytes > 100_000, `a code cache of ${cacheBytes} bytes`);
  const text = await readFile(out, 'utf8');
  // Only built-in modules are required: every package the command uses is inside.
  const required = new Set([...text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1] ?? ''));
  t.ok(required.size > 0);
  t.same([...required].filter((s) => !s.startsWith('node:') && !builtinModules.includes(s)), [], 'no package or relative file is required');
  t.notMatch(text, /import\.meta/, 'import.meta is rewritten (CommonJS has none)');
  if (existsSync(STATIC_MODULE_URL)) t.match(text, /useBundledStaticModule\(/, 'the build\'s static protobuf module is bundled in and handed over');
  const loaded = runBundle(out, await readFile(codeCachePath(out)));
  t.type(loaded.exports.pullCommand, 'function');
  // The bundled command parses its arguments like the module graph's: a usage error exits 2.
  const stderr = process.stderr.write;
  let said = '';
  process.stderr.write = ((s: string) => ((said += s), true)) as typeof process.stderr.write;
  try {
    t.equal(await loaded.exports.pullCommand([]), 2);
  } finally {
    process.stderr.write = stderr;
  }
  t.match(said, /exactly one IMAGE_REF is required/);
  // In fresh processes (this one has the script in V8's own cache already): the cache made at
  // build time is taken; a foreign one is refused, and the bundle still runs.
  const probe = (cacheExpr: string): { accepted: boolean; command: string } => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', `
    import { readFileSync } from 'node:fs';
    const { runBundle, codeCachePath } = await import(${JSON.stringify(new URL('../../src/cli/pull-bundle.js', import.meta.url).href)});
    const b = runBundle(${JSON.stringify(out)}, ${cacheExpr});
    process.stdout.write(JSON.stringify({ accepted: b.cacheAccepted, command: typeof b.exports.pullCommand }));`], { encoding: 'utf8' })) as { accepted: boolean; command: string };
  t.same(probe(`readFileSync(codeCachePath(${JSON.stringify(out)}))`), { accepted: true, command: 'function' }, 'V8 takes the code cache made at build time');
  t.same(probe("Buffer.from('not a code cache')"), { accepted: false, command: 'function' }, 'a foreign cache is refused, and the bundle still runs');
});

t.test('the bundle is used only when it is not older than the compiled command', async (t) => {
  const dir = t.testdir({ 'pull-command.js': '', 'pull-command.bundle.cjs': '' });
  const compiled = pathToFileURL(join(dir, 'pull-command.js'));
  const bundle = pathToFileURL(join(dir, 'pull-command.bundle.cjs'));
  await utimes(compiled, 1000, 1000);
  await utimes(bundle, 2000, 2000);
  t.same(pullModuleChoice(bundle, compiled), { url: bundle }, 'bundled after the compile: the bundle');
  await utimes(compiled, 3000, 3000);
  const stale = pullModuleChoice(bundle, compiled);
  t.equal(stale.url.href, compiled.href, 'compiled again since: the module graph');
  t.match(stale.stale ?? '', /older than the compiled sources/);
  const none = pullModuleChoice(pathToFileURL(join(dir, 'absent.cjs')), compiled);
  t.equal(none.url.href, compiled.href);
  t.match(none.stale ?? '', /no bundle/);
});
