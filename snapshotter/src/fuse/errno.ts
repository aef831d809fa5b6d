/**
 * The FUSE side of the error model: ClipError kinds become negative errno values here and nowhere
 * else. The kernel only ever sees the number; callers log the detail before translating.
 */
import type { ErrorKind } from '../errors/index.js';

/** Negative errno values as fuse-native callbacks expect them (Linux numbering). */
export const ERRNO = {
  EPERM: -1,
  ENOENT: -2,
  EIO: -5,
  EBADF: -9,
  EACCES: -13,
  EEXIST: -17,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EROFS: -30,
  ERANGE: -34,
  ENAMETOOLONG: -36,
  ENOSYS: -38,
  ESTALE: -116,
  ENODATA: -61,
} as const;

/** The errno the kernel gets for a failure of the given kind. */
export function toErrno(kind: ErrorKind): number {
  switch (kind) {
    case 'not_found':
      return ERRNO.ENOENT;
    case 'already_exists':
      return ERRNO.EEXIST;
    case 'invalid_argument':
      return ERRNO.EINVAL;
    case 'failed_precondition':
      return ERRNO.EPERM;
    case 'unimplemented':
      return ERRNO.ENOSYS;
    // Storage that cannot deliver, bytes that fail verification and our own bugs all look the
    // same to a reading process: the I/O failed, try again later.
    case 'unavailable':
    case 'data_corrupt':
    case 'internal':
      return ERRNO.EIO;
    default: {
      const unreachable: never = kind;
      return unreachable;
    }
  }
}
