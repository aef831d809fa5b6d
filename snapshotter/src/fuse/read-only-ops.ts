/** The mutating operations of a read-only filesystem: every one answers EROFS. */
import { ERRNO } from './errno.js';

const MUTATING = [
  'write', 'create', 'unlink', 'mkdir', 'rmdir', 'rename', 'truncate', 'ftruncate', 'chmod', 'chown',
  'utimens', 'setxattr', 'removexattr', 'symlink', 'link', 'mknod',
] as const;

type Refuse = (...args: unknown[]) => void;

/** Operation name → handler that calls its callback (always the last argument) with EROFS. */
export function readOnlyOps(): Record<(typeof MUTATING)[number], Refuse> {
  const refuse: Refuse = (...args) => {
    const cb = args[args.length - 1];
    if (typeof cb === 'function') (cb as (result: number) => void)(ERRNO.EROFS);
  };
  const ops = {} as Record<(typeof MUTATING)[number], Refuse>;
  for (const name of MUTATING) ops[name] = refuse;
  return ops;
}
