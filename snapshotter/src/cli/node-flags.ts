/**
 * The V8 flags the daemon and the FUSE server run with. V8 grows each semi-space of the young
 * generation up to 16 MB under an allocation burst (a pull, 200 mounts, a bulk read) and keeps it
 * committed afterwards: ~30 MB of resident memory per process that the steady state never uses.
 * Capped at 2 MB, 200 lazy layers cost the daemon 17 MB and the FUSE server 18 MB less (README
 * "Memory"); the extra scavenges are cheap because read buffers live outside the V8 heap.
 * The systemd units and the DaemonSet set the same flags through NODE_OPTIONS; a FUSE server the
 * daemon or `upgrade-fuse-server` starts gets them on its command line.
 */

/** The flags, as Node takes them on its command line or in NODE_OPTIONS. */
export const MEMORY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

const flagName = (flag: string): string => flag.split('=')[0]!;

/**
 * Node arguments for a FUSE server this process starts: its own `execArgv`, plus each memory flag
 * that neither `execArgv` nor `NODE_OPTIONS` sets already (an operator's own value wins), with
 * `--max-old-space-size` from `[fuse_server] max_old_space_mb` when that is not 0.
 */
export function fuseServerNodeArgs(execArgv: readonly string[], nodeOptions = '', maxOldSpaceMb = 0): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].filter(Boolean).map(flagName);
  const flags = [...MEMORY_NODE_FLAGS, ...(maxOldSpaceMb > 0 ? [`--max-old-space-size=${maxOldSpaceMb}`] : [])];
  return [...execArgv, ...flags.filter((f) => !given.includes(flagName(f)))];
}
