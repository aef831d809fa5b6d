/**
 * The FUSE server protocol: the daemon's calls (one per RemoteLayers method, plus `hello` and
 * `mounted`) and the shapes that cross the socket. Requests carry an id and a deadline; answers
 * carry the id and either a result or an error with its ClipError kind and code.
 */
import { CLIP_ERROR_KINDS, ClipError, dataCorrupt, findClipError, messageOf, type ClipErrorCode } from '../errors/index.js';
import type { ServedMount } from '../remote/index.js';
import type { IdRange } from '../snapshots/index.js';

/** Bumped when a method changes meaning; `hello` reports it so the daemon can refuse a mismatch. */
export const PROTOCOL_VERSION = 1;

/** A mount the FUSE server serves, as it reports it (mappedFrom: an id-mapped view of that layer mount). */
export type ServedLayer = ServedMount;

/** Params and results of every method. */
export interface Methods {
  hello: { params: Record<string, never>; result: { version: number; instance: string; pid: number } };
  mount: {
    params: { mountpoint: string; labels: Record<string, string>; key: string; restore: boolean; parent?: string };
    result: { labels?: Record<string, string> };
  };
  check: { params: { mountpoint: string; labels: Record<string, string> }; result: Record<string, never> };
  mountMapped: { params: { layerMountpoint: string; target: string; uids: IdRange[]; gids: IdRange[] }; result: Record<string, never> };
  unmount: { params: { mountpoint: string }; result: Record<string, never> };
  mounted: { params: Record<string, never>; result: { layers: ServedLayer[] } };
  fallback: { params: { code: string }; result: Record<string, never> };
  localDir: { params: { mountpoint: string }; result: { dir?: string } };
  retire: { params: { mountpoint: string }; result: { retired: boolean } };
  /** From a successor FUSE server (`fuse-server --take-over`), never the daemon: see handover.ts. */
  handover: { params: { path: string }; result: { mounts: number } };
}
export type Method = keyof Methods;
export const METHODS: readonly Method[] = ['hello', 'mount', 'check', 'mountMapped', 'unmount', 'mounted', 'fallback', 'localDir', 'retire', 'handover'];

/** A request on the wire. `deadlineMs` is how long the caller waits, from when it sent it. */
export interface Request<M extends Method = Method> {
  id: number;
  method: M;
  params: Methods[M]['params'];
  deadlineMs: number;
}

/** An error as it crosses the socket. */
export interface WireError {
  kind: string;
  code: string;
  message: string;
}

/**
 * A message the server sends unasked, with id 0 (no request has it): `extracted` says a layer's
 * extracted directory is ready, so the daemon may retire FUSE mounts nobody reads through.
 */
export interface ServerEvent {
  id: 0;
  event: 'extracted';
  mountpoint: string;
}

/** An answer on the wire. */
export type Response = { id: number; result: unknown } | { id: number; error: WireError };

/** Any thrown value as a wire error (a plain Error becomes `internal`/`CLIP_INTERNAL`). */
export function toWireError(err: unknown): WireError {
  const c = findClipError(err);
  return { kind: c?.kind ?? 'internal', code: c?.code ?? 'CLIP_INTERNAL', message: messageOf(err) };
}

/** A wire error as the ClipError it was; an unknown code or a mismatched kind is itself an error. */
export function fromWireError(e: WireError): ClipError {
  const kinds = CLIP_ERROR_KINDS as Record<string, string>;
  if (kinds[e.code] === undefined || kinds[e.code] !== e.kind) {
    return dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', `FUSE server answered with unknown error ${String(e.code).slice(0, 80)}/${String(e.kind).slice(0, 40)}: ${String(e.message).slice(0, 500)}`);
  }
  // The message already carries its kind's suffix; rebuild without adding another.
  return new ClipError(e.kind as never, e.code as ClipErrorCode, e.message);
}

/** Checks the envelope of a decoded request; the params are checked by each method. */
export function parseRequest(v: unknown): Request {
  const r = v as Partial<Request> | null;
  if (typeof r !== 'object' || r === null || typeof r.id !== 'number' || typeof r.method !== 'string' || typeof r.deadlineMs !== 'number' || typeof r.params !== 'object' || r.params === null) {
    throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', 'request is not {id, method, params, deadlineMs}');
  }
  return r as Request;
}

/** Checks the envelope of a decoded answer. */
export function parseResponse(v: unknown): Response | ServerEvent {
  const r = v as { id?: unknown; result?: unknown; error?: unknown; event?: unknown; mountpoint?: unknown } | null;
  if (typeof r !== 'object' || r === null || typeof r.id !== 'number') throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', 'answer has no numeric id');
  if (r.id === 0) {
    if (r.event !== 'extracted' || typeof r.mountpoint !== 'string') throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', 'event is not {event: "extracted", mountpoint}');
    return { id: 0, event: r.event, mountpoint: r.mountpoint };
  }
  if ('error' in r) {
    const e = r.error as Partial<WireError> | null;
    if (typeof e !== 'object' || e === null || typeof e.kind !== 'string' || typeof e.code !== 'string' || typeof e.message !== 'string') {
      throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', 'error answer is not {kind, code, message}');
    }
    return { id: r.id, error: e as WireError };
  }
  return { id: r.id, result: r.result };
}

/** A string param, checked. */
export function str(params: object, name: string): string {
  const v = (params as Record<string, unknown>)[name];
  if (typeof v !== 'string') throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', `param ${name} is not a string`);
  return v;
}

/** A string-to-string record param, checked. */
export function labelsParam(params: object, name: string): Record<string, string> {
  const v = (params as Record<string, unknown>)[name];
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', `param ${name} is not a map of strings`);
  }
  return v as Record<string, string>;
}

/** An id-range list param, checked (the ranges themselves are checked again by IdMapping's users). */
export function rangesParam(params: object, name: string): IdRange[] {
  const v = (params as Record<string, unknown>)[name];
  const ok = Array.isArray(v) && v.length <= 340 && v.every((r: unknown) => {
    const x = r as Partial<IdRange> | null;
    return typeof x === 'object' && x !== null && [x.containerId, x.hostId, x.size].every((n) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffff_ffff);
  });
  if (!ok) throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', `param ${name} is not a list of id ranges`);
  return v as IdRange[];
}
