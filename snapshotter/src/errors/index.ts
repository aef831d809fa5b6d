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
export { CLIP_ERROR_KINDS } from './codes.js';
export type { ClipErrorCode, CodeOf } from './codes.js';
export type { ErrorKind } from './kinds.js';
