/** Pack a staging directory as a layer tar with GNU tar, keeping owners, modes, xattrs and devices. */
import { readdirSync } from 'node:fs';
import { runCommand } from '../harness/run-command.js';

/** Fixed mtime so rebuilding the same tree gives the same tar, and so the same digests. */
export const LAYER_MTIME = '@1700000000';

/** `tar` the contents of `dir` (not `dir` itself) into `out`, entries without a `./` prefix. */
export async function packLayer(dir: string, out: string): Promise<void> {
  const top = readdirSync(dir).sort();
  await runCommand('tar', [
    '--format=pax',
    '--xattrs',
    '--xattrs-include=*',
    '--numeric-owner',
    '--sort=name',
    `--mtime=${LAYER_MTIME}`,
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    '-C', dir,
    '-cf', out,
    '--', ...top,
  ], { timeoutMs: 120_000 });
}
