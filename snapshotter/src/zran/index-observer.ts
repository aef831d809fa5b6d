/** Glue between `buildIndex`'s compressed-stream hook and the gzip checkpoint / zstd frame builders. */
import type { CompressedObserver } from '../clip/index.js';
import { messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { CheckpointBuilder, type CheckpointBuilderOptions } from './checkpoint-builder.js';
import { encodeCheckpointTable } from './checkpoint-table.js';
import { loadZran } from './native.js';
import { ZstdFrameBuilder, type ZstdFrameBuilderOptions } from './zstd-frame-builder.js';
import { encodeZstdFrameTable } from './zstd-frame-table.js';

/**
 * An observer that builds the gzip checkpoint section, or undefined when the addon is missing.
 * A checkpoint failure never fails the index build: the index is then written without the
 * section, exactly as before, and the layer is fetched whole.
 */
export function gzipCheckpointObserver(opts: CheckpointBuilderOptions & { logger?: Logger } = {}): CompressedObserver | undefined {
  if (!loadZran()) return undefined;
  const log = opts.logger ?? silentLogger();
  let builder: CheckpointBuilder | undefined;
  const drop = (err: unknown): void => {
    builder = undefined;
    log.warn({ err: messageOf(err) }, 'gzip checkpoints skipped');
  };
  return {
    start(compression) {
      if (compression === 'gzip') builder = new CheckpointBuilder(opts);
    },
    push(chunk) {
      try {
        builder?.push(chunk);
      } catch (err) {
        drop(err);
      }
    },
    finish() {
      try {
        const table = builder?.finish();
        return table ? encodeCheckpointTable(table) : undefined;
      } catch (err) {
        drop(err);
        return undefined;
      }
    },
  };
}

/**
 * An observer that builds the zstd frame section. It decodes the layer for `buildIndex` (its
 * `decompressor`), so the table costs a frame scan and a sha256 pass, not a second decode; a
 * layer that does not decode fails the build exactly as it would without the observer.
 */
export function zstdFrameObserver(opts: ZstdFrameBuilderOptions & { logger?: Logger } = {}): CompressedObserver {
  const log = opts.logger ?? silentLogger();
  let builder: ZstdFrameBuilder | undefined;
  return {
    start(compression) {
      builder = compression === 'zstd' ? new ZstdFrameBuilder(opts) : undefined;
    },
    push() {},
    decompressor: () => builder?.transform(),
    finish() {
      const table = builder?.finish();
      if (builder && !table) log.debug({ reason: builder.skippedBecause }, 'zstd layer gets no frame table');
      return table ? encodeZstdFrameTable(table) : undefined;
    },
  };
}

export interface RandomAccessObserverOptions {
  /** Build gzip checkpoints (`[index] gzip_checkpoints`; needs the addon). */
  gzip: boolean;
  /** Build zstd frame tables (`[index] zstd_frame_tables`). */
  zstd: boolean;
  spanBytes?: number;
  minLayerBytes?: number;
  logger?: Logger;
}

/** The observer for whichever random-access tables are enabled, or undefined for none. */
export function randomAccessObserver(o: RandomAccessObserverOptions): CompressedObserver | undefined {
  const { gzip, zstd, ...opts } = o;
  const gz = gzip ? gzipCheckpointObserver(opts) : undefined;
  const zs = zstd ? zstdFrameObserver(opts) : undefined;
  if (!gz || !zs) return gz ?? zs;
  let active: CompressedObserver | undefined;
  return {
    start(compression) {
      active = compression === 'gzip' ? gz : compression === 'zstd' ? zs : undefined;
      active?.start(compression);
    },
    push: (chunk) => active?.push(chunk),
    decompressor: (compression) => active?.decompressor?.(compression),
    finish: () => active?.finish(),
  };
}
