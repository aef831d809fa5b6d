/**
 * A real systemd (the host's /lib/systemd/systemd) hosting a test's units: PID 1 of its own pid,
 * mount and cgroup namespaces, in a cgroup of its own, with an empty /etc/systemd/system (only the
 * test's units and `clip-test.target`, so nothing of the host's configuration starts) and a
 * private /run. Every unit the distribution's targets pull in (`*.wants/`, `*.requires/`) is
 * masked, and the test's units must say `DefaultDependencies=no`: sysinit.target would otherwise
 * start systemd-tmpfiles-setup, which empties the host's /tmp (learned the hard way), and udev,
 * journald and the rest, none of which belong to a test. One directory of the host (`sharedDir`, e.g. the snapshotter's root) stays a
 * shared mount between the host and systemd's mount namespace, so FUSE mounts made by a unit are
 * seen by the host's containerd; everything else mounted inside stays inside.
 * Pids differ inside: `hostPids(unit)` and `hostPidOf(nsPid)` translate.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from './managed-process.js';
import { runCommand, type CommandResult } from './run-command.js';
import { waitUntil, WaitAborted } from './wait.js';

const SYSTEMD = '/lib/systemd/systemd';

/**
 * The host's cgroup2 hierarchy (pure v2 at /sys/fs/cgroup, or the `unified` one of a hybrid
 * host). The test's systemd always runs in unified mode on it: only there does systemd 252 wait
 * for a unit's cgroup to empty on stop when it runs in a container (on the legacy hierarchy it
 * SIGKILLs at once), and a production node runs unified.
 */
function cgroup2Root(): string | undefined {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  if (/ \/sys\/fs\/cgroup \S+ - cgroup2 /.test(mounts)) return '/sys/fs/cgroup';
  if (/ \/sys\/fs\/cgroup\/unified \S+ - cgroup2 /.test(mounts)) return '/sys/fs/cgroup/unified';
  return undefined;
}

/** Every unit the distribution's own targets pull in (masked for the test's systemd). */
function distributionWants(): string[] {
  const names = new Set<string>(['systemd-tmpfiles-setup.service', 'systemd-tmpfiles-clean.service', 'systemd-tmpfiles-clean.timer', 'systemd-tmpfiles-setup-dev.service']);
  for (const base of ['/lib/systemd/system', '/usr/lib/systemd/system']) {
    if (!existsSync(base)) continue;
    for (const d of readdirSync(base)) {
      if (!d.endsWith('.wants') && !d.endsWith('.requires')) continue;
      for (const u of readdirSync(join(base, d))) names.add(u);
    }
  }
  return [...names];
}

/** Why a systemd cannot be started here, or undefined when it can. */
export function systemdMissingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, cgroups, mounts)';
  if (!existsSync(SYSTEMD)) return `${SYSTEMD} is missing (Debian package systemd)`;
  if (!existsSync('/usr/bin/unshare') || !existsSync('/usr/bin/nsenter')) return 'unshare/nsenter (util-linux) are missing';
  if (cgroup2Root() === undefined) return 'no cgroup2 hierarchy (neither /sys/fs/cgroup nor /sys/fs/cgroup/unified) for systemd to manage';
  return undefined;
}

export interface SystemdOptions {
  /** Working directory for the unit files, the init script and the log. */
  dir: string;
  /** The one host directory whose mounts propagate both ways (made a shared bind mount of itself). */
  sharedDir: string;
  /** Unit file name → contents, installed in systemd's empty /etc/systemd/system. */
  units: Record<string, string>;
}

export interface SystemdNode {
  /** `systemctl ARGS` inside (a failure is returned, not thrown). */
  systemctl(args: string[], timeoutMs?: number): Promise<CommandResult>;
  /** `systemctl show UNIT -p …` as a record. */
  show(unit: string, props: string[]): Promise<Record<string, string>>;
  /** Host pids of every process in `unit`'s cgroup. */
  hostPids(unit: string): number[];
  /** The host pid of a pid of systemd's namespace (among `unit`'s processes). */
  hostPidOf(unit: string, nsPid: number): number | undefined;
  /** Kill systemd and everything it runs, remove its cgroups and the shared bind mount. */
  stop(): Promise<void>;
}

// Runs as PID 1's parent inside the new namespaces: only `shared` keeps propagating to the host;
// the host's configuration is hidden behind empty tmpfs mounts; then systemd becomes PID 1.
const INIT_SCRIPT = `set -e
shared="$1"; units="$2"
awk '{print $5}' /proc/self/mountinfo | while read -r mp; do
  mp=$(printf '%b' "$mp")
  case "$mp" in "$shared"|"$shared"/*) ;; *) mount --make-private "$mp" 2>/dev/null || true ;; esac
done
mount -t proc proc /proc
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system
cp -a "$units"/. /etc/systemd/system/
# This cgroup namespace's root of the cgroup2 hierarchy, alone at /sys/fs/cgroup: unified mode.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
exec env -i container=clip-test PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
  ${SYSTEMD} --system --unit=clip-test.target --log-level=info
`;

/** Start systemd with `units` and wait until it runs `clip-test.target`. */
export async function startSystemd(opts: SystemdOptions): Promise<SystemdNode> {
  const v2 = cgroup2Root();
  if (!v2) throw new Error(systemdMissingReason() ?? 'no cgroup2 hierarchy');
  const unitsDir = join(opts.dir, 'units');
  mkdirSync(unitsDir, { recursive: true });
  writeFileSync(join(unitsDir, 'clip-test.target'), '[Unit]\nDescription=clip-snapshotter test target\nDefaultDependencies=no\n');
  for (const [name, text] of Object.entries(opts.units)) {
    if (!/^DefaultDependencies=no$/m.test(text)) throw new Error(`${name}: a test unit needs DefaultDependencies=no (sysinit.target would run the host's boot units)`);
    writeFileSync(join(unitsDir, name), text);
  }
  for (const wanted of distributionWants()) if (!existsSync(join(unitsDir, wanted))) symlinkSync('/dev/null', join(unitsDir, wanted));
  const script = join(opts.dir, 'init.sh');
  writeFileSync(script, INIT_SCRIPT);
  await runCommand('mount', ['--bind', opts.sharedDir, opts.sharedDir]);
  await runCommand('mount', ['--make-shared', opts.sharedDir]);
  const cgroup = `clip-test-${process.pid}-${Date.now().toString(36)}`;
  const cgroups = [join(v2, cgroup)];
  for (const c of cgroups) mkdirSync(c);
  const enter = cgroups.map((c) => `echo $$ > ${c}/cgroup.procs`).join('; ');
  // --kill-child: the namespace's PID 1 (and so every process in it) dies with this process.
  const proc = new ManagedProcess({
    command: '/bin/sh',
    args: ['-c', `${enter}; exec unshare --pid --fork --kill-child --mount --cgroup --propagation unchanged /bin/sh ${script} ${opts.sharedDir} ${unitsDir}`],
    logPath: join(opts.dir, 'systemd.log'),
  });
  const pid1 = (): number | undefined => {
    const outer = proc.pid;
    if (outer === undefined) return undefined;
    const children = readFileSync(`/proc/${outer}/task/${outer}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return children[0];
  };
  const nsenter = (args: string[], timeoutMs = 60_000): Promise<CommandResult> => {
    const init = pid1();
    if (init === undefined) throw new Error('systemd is not running');
    return runCommand('nsenter', ['-t', String(init), '-m', '-p', ...args], { allowFailure: true, timeoutMs });
  };
  const systemctl = (args: string[], timeoutMs?: number): Promise<CommandResult> => nsenter(['systemctl', '--no-pager', ...args], timeoutMs);
  const unitCgroup = (unit: string): string => join(v2, cgroup, 'system.slice', unit, 'cgroup.procs');
  const hostPids = (unit: string): number[] => {
    const file = unitCgroup(unit);
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number) : [];
  };
  const stop = async (): Promise<void> => {
    await proc.stop('SIGKILL', 10_000);
    // Deepest first; a cgroup empties a moment after its processes died.
    const removeTree = (dir: string): void => {
      if (!existsSync(dir)) return;
      for (const e of readdirSync(dir)) if (statSync(join(dir, e)).isDirectory()) removeTree(join(dir, e));
      rmdirSync(dir);
    };
    for (const c of cgroups) await waitUntil(`cgroup ${c} removed`, async () => (removeTree(c), true), 20_000, 200).catch(() => undefined);
    await runCommand('umount', ['-l', opts.sharedDir], { allowFailure: true });
  };
  try {
    await waitUntil('systemd runs clip-test.target', async () => {
      if (!proc.running) throw new WaitAborted(`systemd exited: ${readFileSync(join(opts.dir, 'systemd.log'), 'utf8').slice(-2000)}`);
      if (pid1() === undefined) return false;
      const r = await systemctl(['is-active', 'clip-test.target'], 10_000);
      return r.stdout.trim() === 'active';
    }, 60_000, 200);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    systemctl,
    show: async (unit, props) => {
      const r = await systemctl(['show', unit, ...props.flatMap((p) => ['-p', p])]);
      return Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    },
    hostPids,
    hostPidOf: (unit, nsPid) =>
      hostPids(unit).find((p) => {
        const status = existsSync(`/proc/${p}/status`) ? readFileSync(`/proc/${p}/status`, 'utf8') : '';
        const ns = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number);
        return ns !== undefined && ns[ns.length - 1] === nsPid;
      }),
    stop,
  };
}
