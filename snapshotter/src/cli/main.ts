/** `clip-snapshotter serve | fuse-server | upgrade-fuse-server | ready | index | pull | status | version`: argument parsing and exit codes. */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAbsolute } from 'node:path';
import { invalidArgument, messageOf } from '../errors/index.js';


/** Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error. */
const EXIT_USAGE = 2;

const USAGE = `usage: clip-snapshotter <command> [flags]

commands:
  serve    run the snapshotter daemon
           [--config FILE] [--root DIR] [--address SOCKET] [--log-level LEVEL]
           [--no-spawn-fuse-server]  (wait for a FUSE server a service manager starts)
  fuse-server
           run the process that serves the lazy layers' FUSE mounts (the daemon starts one
           when none answers); same flags as serve, and
           [--take-over[=required|auto]]  (replace the FUSE server running on the same socket:
           it hands over every mount and its /dev/fuse connection; needs [fuse_server]
           driver = "kernel". required (the bare flag): fail when none runs; auto: start fresh
           when none answers)
           [--after-hand-over=exit|wait]  (once this server handed over to a successor: exit
           (default), or wait idle, holding nothing, until SIGTERM and exit 0 — for a pod)
           [--ready-file FILE]  (written while this process serves; a readiness probe's file)
  upgrade-fuse-server
           start the installed build's \`fuse-server --take-over\` beside the running FUSE server
           and wait until it serves in its place (systemd's ExecReload); same flags as serve
  ready    exit 0 when FILE (a FUSE server's --ready-file) names a live process, else 1
           FILE
  index    build the clip index of every layer of an image and push it as an OCI artifact
           IMAGE_REF [--config FILE] [--plain-http] [--platform OS/ARCH | --all-platforms]
           [--concurrency N] [--json]
  pull     pull an image through containerd so its layers are prepared lazily
           IMAGE_REF [--address CONTAINERD_SOCKET] [--namespace NS] [--snapshotter NAME]
           [--config FILE] [--plain-http]
  status   how each mounted layer was served: present bytes, sources, completion
           [IMAGE] [--config FILE] [--address SNAPSHOTTER_SOCKET] [--status-address SOCKET] [--json]
  version  print the version
`;

type Command = (args: string[]) => Promise<number>;

/** An absolute path, or a CLIP_FLAG_PATH usage error. */
function absolutePath(flag: string, value: string): string {
  if (!isAbsolute(value)) throw invalidArgument('CLIP_FLAG_PATH', `--${flag} must be an absolute path, got ${value.slice(0, 200)}`);
  return value;
}

function version(): string {
  const pkg = fileURLToPath(new URL('../../../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/** `--take-over` alone means `--take-over=required` (parseArgs has no optional values). */
function normalizeTakeOver(args: string[]): string[] {
  return args.map((a) => (a === '--take-over' ? '--take-over=required' : a));
}

/** One of `allowed`, or a CLIP_FLAG_VALUE usage error. */
function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw invalidArgument('CLIP_FLAG_VALUE', `--${flag}=${value.slice(0, 40)}: expected one of ${allowed.join(', ')}`);
}

/** `serve`, `fuse-server` and `upgrade-fuse-server` take the same flags and config. */
function serveLike(run: 'serve' | 'fuse-server' | 'upgrade-fuse-server'): Command {
  return async (rawArgs) => {
    const args = run === 'fuse-server' ? normalizeTakeOver(rawArgs) : rawArgs;
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string' },
        root: { type: 'string' },
        address: { type: 'string' },
        'log-level': { type: 'string' },
        'no-spawn-fuse-server': { type: 'boolean' },
        ...(run === 'fuse-server'
          ? { 'take-over': { type: 'string' as const }, 'after-hand-over': { type: 'string' as const }, 'ready-file': { type: 'string' as const } }
          : {}),
      },
      strict: true,
    });
    const v = values as { 'take-over'?: string; 'after-hand-over'?: string; 'ready-file'?: string };
    let fuseOpts;
    try {
      fuseOpts = {
        takeOver: oneOf('take-over', v['take-over'], ['required', 'auto'] as const, 'never' as const),
        afterHandOver: oneOf('after-hand-over', v['after-hand-over'], ['exit', 'wait'] as const, 'exit' as const),
        ...(v['ready-file'] !== undefined ? { readyFile: absolutePath('ready-file', v['ready-file']) } : {}),
      };
    } catch (err) {
      process.stderr.write(`clip-snapshotter: ${messageOf(err)}\n`);
      return EXIT_USAGE;
    }
    // Commands load their modules on demand so `version` and usage errors answer at once.
    const { resolveServeConfig } = await import('./serve-config.js');
    let cfg;
    try {
      cfg = await resolveServeConfig({ config: values.config, root: values.root, address: values.address, logLevel: values['log-level'] });
    } catch (err) {
      process.stderr.write(`clip-snapshotter: ${messageOf(err)}\n`);
      return EXIT_USAGE;
    }
    // A service manager that starts the FUSE server in its own unit says so here.
    if (values['no-spawn-fuse-server']) cfg.fuseServer.spawn = false;
    // Each command its own modules: the daemon's (gRPC, the metadata store) stay out of the FUSE server.
    if (run === 'serve') await (await import('./serve-command.js')).serve(cfg, args.filter((a) => a !== '--no-spawn-fuse-server'));
    else if (run === 'upgrade-fuse-server') await (await import('./upgrade-fuse-server-command.js')).upgradeFuseServer(cfg, args);
    else await (await import('./fuse-server-command.js')).serveFuse(cfg, fuseOpts);
    return 0;
  };
}

const commands: Record<string, Command> = {
  serve: serveLike('serve'),
  'fuse-server': serveLike('fuse-server'),
  'upgrade-fuse-server': serveLike('upgrade-fuse-server'),
  ready: async (args) => (await import('./ready-command.js')).readyCommand(args),
  index: async (args) => (await import('./index-command.js')).indexCommand(args),
  pull: async (args) => (await (await import('./pull-bundle.js')).loadPullCommand()).pullCommand(args),
  status: async (args) => (await import('./status-command.js')).statusCommand(args),
  version: async () => {
    process.stdout.write(`clip-snapshotter ${version()}\n`);
    return 0;
  },
};

/** Run the CLI with `argv` (without node and script) and return the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name === undefined ? undefined : commands[name];
  if (!cmd) {
    process.stderr.write(name && !['-h', '--help', 'help'].includes(name) ? `clip-snapshotter: unknown command "${name}"\n${USAGE}` : USAGE);
    return name === undefined || !['-h', '--help', 'help'].includes(name) ? EXIT_USAGE : 0;
  }
  try {
    return await cmd(rest);
  } catch (err) {
    process.stderr.write(`clip-snapshotter ${name}: ${messageOf(err)}\n`);
    return (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? EXIT_USAGE : 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`clip-snapshotter: ${messageOf(err)}\n`);
    process.exit(1);
  },
);
