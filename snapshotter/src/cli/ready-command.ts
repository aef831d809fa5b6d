/**
 * `clip-snapshotter ready FILE`: exit 0 when FILE — a FUSE server's `--ready-file` — names a live
 * process, 1 otherwise. A Kubernetes readiness probe: two pods of the FUSE server DaemonSet share
 * the node's sockets during a surge rollout, so asking the socket cannot tell which one serves;
 * the file lives in the pod and exists only while that pod's server serves.
 */
import { readFile } from 'node:fs/promises';

/** Run the probe; prints why it is not ready. */
export async function readyCommand(args: string[]): Promise<number> {
  const [file, ...rest] = args;
  if (file === undefined || rest.length > 0 || !file.startsWith('/')) {
    process.stderr.write('usage: clip-snapshotter ready FILE (an absolute path)\n');
    return 2;
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    process.stderr.write(`not ready: ${file}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}\n`);
    return 1;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) {
    process.stderr.write(`not ready: ${file} names no pid\n`);
    return 1;
  }
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') {
      process.stderr.write(`not ready: pid ${pid} from ${file} is gone\n`);
      return 1;
    }
  }
  return 0;
}
