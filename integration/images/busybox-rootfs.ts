/** A minimal busybox root filesystem: the static binary plus a relative symlink per applet. */
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { runCommand } from '../harness/run-command.js';
import type { StagingTree } from './staging-tree.js';

export const BUSYBOX_PATH = '/usr/bin/busybox';

/** sha256 of the host's busybox-static binary (part of every image's cache key). */
export function busyboxHash(): string {
  return createHash('sha256').update(readFileSync(BUSYBOX_PATH)).digest('hex');
}

/** Populate `tree` with /bin/busybox, its applets, and the directories a container expects. */
export async function addBusyboxRootfs(tree: StagingTree): Promise<void> {
  const applets = (await runCommand(BUSYBOX_PATH, ['--list'])).stdout.split('\n').filter((a) => a && a !== 'busybox');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'usr', 'usr/bin', 'var', 'var/empty']) tree.dir(d);
  tree.dir('tmp', { mode: 0o1777 }).dir('root', { mode: 0o700 });
  tree.copy('bin/busybox', BUSYBOX_PATH, { mode: 0o755 });
  for (const a of applets) tree.symlink(`bin/${a}`, 'busybox');
  tree.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n');
  tree.file('etc/group', 'root:x:0:\nuser:x:1000:\n');
}
