/** Glue between `buildIndex`'s compressed-stream hook and the checkpoint builder. */
import type { CompressedObserver } from '../clip/index.js';
import { messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { CheckpointBuilder, type CheckpointBuilderOptions } from './checkpoint-builder.js';
import { encodeCheckpointTable } from './checkpoint-table.js';
import { loadZran } from './native.js';

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
