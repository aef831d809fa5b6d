/** The FUSE server's methods over the read path's ClipRemoteLayers. */
import { randomUUID } from 'node:crypto';
import { unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { ClipRemoteLayers } from '../remote/index.js';
import { IdMapping } from '../snapshots/id-mapping.js';
import type { Handlers } from './server.js';
import { PROTOCOL_VERSION, labelsParam, rangesParam, str } from './protocol.js';

/** What the handlers need besides the layers. */
export interface HandlerOptions {
  remote: Pick<ClipRemoteLayers, 'mount' | 'check' | 'mountMapped' | 'unmount' | 'servedMounts' | 'localDir' | 'retire'>;
  log: Logger;
  /** Count a fallback the daemon reports. */
  onFallback?: (code: string) => void;
  /** Hand every mount to a successor listening at `path` (handover.ts); absent = refused. */
  onHandover?: (path: string) => Promise<{ mounts: number }>;
}

/** Handlers of one FUSE server instance (a fresh instance id per process). */
export function fuseServerHandlers(o: HandlerOptions): Handlers {
  const instance = randomUUID();
  const { remote, log } = o;
  return {
    hello: async () => ({ version: PROTOCOL_VERSION, instance, pid: process.pid }),
    mount: async (p) => {
      const parent = (p as { parent?: unknown }).parent;
      const labels = await remote.mount(str(p, 'mountpoint'), labelsParam(p, 'labels'), {
        key: str(p, 'key'),
        restore: (p as { restore?: unknown }).restore === true,
        log,
        ...(typeof parent === 'string' ? { parent } : {}),
      });
      return labels ? { labels } : {};
    },
    check: async (p) => {
      labelsParam(p, 'labels');
      await remote.check(str(p, 'mountpoint'));
      return {};
    },
    mountMapped: async (p) => {
      const ids = new IdMapping(rangesParam(p, 'uids'), rangesParam(p, 'gids'));
      await remote.mountMapped(str(p, 'layerMountpoint'), str(p, 'target'), ids, log);
      return {};
    },
    unmount: async (p) => {
      await remote.unmount(str(p, 'mountpoint'));
      return {};
    },
    mounted: async () => ({ layers: remote.servedMounts() }),
    localDir: async (p) => {
      const dir = await remote.localDir(str(p, 'mountpoint'));
      return dir !== undefined ? { dir } : {};
    },
    retire: async (p) => ({ retired: await remote.retire(str(p, 'mountpoint')) }),
    handover: async (p) => {
      if (!o.onHandover) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', 'this FUSE server does not hand over its mounts');
      return o.onHandover(str(p, 'path'));
    },
    fallback: async (p) => {
      (o.onFallback ?? (() => undefined))(str(p, 'code').slice(0, 128));
      return {};
    },
  };
}


