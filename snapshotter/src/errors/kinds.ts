/** The error categories, mirroring containerd's errdefs: the one thing `service/` and `fuse/` translate. */

/** The categories callers branch on; mirrors containerd's errdefs. */
export type ErrorKind =
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'invalid_argument'
  | 'unavailable'
  | 'data_corrupt'
  | 'unimplemented'
  | 'internal';
