/**
 * Build step (`make build`, after tsc): bundle the compiled pull command into one CommonJS file
 * beside it and write its V8 code cache (see `pull-bundle.ts` for why), and write the containerd
 * API definitions parsed, so no pull parses .proto text, and as static encoders/decoders, so no
 * pull builds protobufjs types or generates their code (`containerd/proto.ts`). esbuild and
 * protobufjs-cli are dev dependencies; an installed tree (`npm ci --omit=dev`) ships the files from
 * build/ and never runs this.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DESCRIPTOR_URL, FILES, PROTO_DIR, STATIC_META_KEY, STATIC_MODULE_URL, descriptorJson, staticMeta } from '../containerd/proto.js';
import { BUNDLE_URL_NAME, PULL_BUNDLE_URL, PULL_COMMAND_URL, codeCachePath, runBundle } from './pull-bundle.js';

/** The part of esbuild's API used here (typed locally: a tree without dev dependencies still compiles). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<unknown>;
}

const loadEsbuild = async (): Promise<Esbuild> => (await import('esbuild' as string)) as Esbuild;

/** Whether esbuild is installed (`make deps`); it is not in a tree installed with `--omit=dev`. */
export async function esbuildAvailable(): Promise<boolean> {
  return loadEsbuild().then(() => true, () => false);
}

/** protobufjs-cli's pbjs (typed locally, as esbuild is). */
interface Pbjs {
  main(args: string[], callback: (err: Error | null, output?: string) => void): unknown;
}

const loadPbjs = (): Pbjs | undefined => {
  try {
    return (createRequire(import.meta.url)('protobufjs-cli') as { pbjs: Pbjs }).pbjs;
  } catch {
    return undefined;
  }
};

/** Whether protobufjs-cli is installed (`make deps`; not with `--omit=dev`). */
export function pbjsAvailable(): boolean {
  return loadPbjs() !== undefined;
}

/**
 * The static module's source: pbjs's encoders, decoders and object converters of every message in
 * the .proto files, with field names as written (`--keep-case`, as proto-loader is asked to), and
 * none of what the client does not call (verify, delimited, type URLs, create, service classes,
 * comments); then the sources digest and each method's types and streaming, which pbjs does not
 * write. The protobufjs it requires is the one bundled with the command.
 */
export async function staticModuleSource(): Promise<string> {
  const pbjs = loadPbjs();
  if (!pbjs) throw new Error('protobufjs-cli is not installed: run `make deps`');
  const meta = staticMeta();
  // pbjs's code shares its namespaces through protobufjs's registry of roots, under this name: one
  // per sources digest, so a module made from other .proto text never rewrites this one's types.
  const args = ['-t', 'static-module', '-w', 'commonjs', '--keep-case', '--no-create', '--no-verify', '--no-delimited',
    '--no-typeurl', '--no-service', '--no-comments', '-r', `clip-containerd-api-${meta.sources.slice(0, 16)}`, '-p', PROTO_DIR, ...FILES];
  const code = await new Promise<string>((resolve, reject) => {
    pbjs.main(args, (err, output) => (err ? reject(err) : resolve(output ?? '')));
  });
  const note = '// Added by the build (bundle-pull-command.ts): the sources digest and each method.';
  return `${code}\n${note}\nmodule.exports[${JSON.stringify(STATIC_META_KEY)}] = ${JSON.stringify(meta)};\n`;
}

/** Write the static module where `containerd/proto.ts` looks for it. */
export async function writeStaticModule(url: URL = STATIC_MODULE_URL): Promise<void> {
  writeFileSync(url, await staticModuleSource());
}

/**
 * Bundle `entry` into `outfile` (fails on any unresolved import), run it once and write the code
 * cache of everything that run compiled. Returns the cache's size in bytes. The build's static
 * module, when there is one, is bundled in and handed to `containerd/proto.ts` by the entry, so the
 * bundle requires no file at run time.
 */
export async function bundlePullCommand(entry = fileURLToPath(PULL_COMMAND_URL), outfile = fileURLToPath(PULL_BUNDLE_URL)): Promise<number> {
  const { build } = await loadEsbuild();
  const staticPath = fileURLToPath(STATIC_MODULE_URL);
  const protoModule = fileURLToPath(new URL('../containerd/proto.js', import.meta.url));
  const contents = [`export * from ${JSON.stringify(entry)};`];
  if (existsSync(staticPath)) {
    contents.push(`import { useBundledStaticModule } from ${JSON.stringify(protoModule)};`,
      `import staticModule from ${JSON.stringify(staticPath)};`, 'useBundledStaticModule(staticModule);');
  }
  await build({
    stdin: { contents: contents.join('\n'), resolveDir: dirname(entry), sourcefile: 'pull-command.bundle-entry.js', loader: 'js' },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    // CommonJS has no import.meta: the loader passes the bundle's own URL under this name.
    define: { 'import.meta.url': BUNDLE_URL_NAME },
  });
  const cache = runBundle(outfile).script.createCachedData();
  writeFileSync(codeCachePath(outfile), cache);
  return cache.length;
}

/** Write the parsed containerd API definitions where `containerdServices` looks for them. */
export function writeContainerdDescriptor(url: URL = DESCRIPTOR_URL): void {
  writeFileSync(url, descriptorJson());
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeContainerdDescriptor();
  writeStaticModule().then(() => bundlePullCommand()).catch((err: unknown) => {
    process.stderr.write(`writing the static protobuf module or bundling the pull command failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
