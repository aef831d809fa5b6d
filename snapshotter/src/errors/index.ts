export {
  ClipError,
  alreadyExists,
  dataCorrupt,
  failedPrecondition,
  findClipError,
  internal,
  invalidArgument,
  isKind,
  kindOf,
  messageOf,
  notFound,
  unavailable,
  wrap,
} from './clip-error.js';
export type { ErrorKind } from './clip-error.js';
