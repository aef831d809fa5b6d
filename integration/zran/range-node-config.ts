/**
 * The cold node of the zran read-pattern tests: range reads with gzip checkpoints of `spanBytes`,
 * no background completion, no start profiles and no extraction, so every byte a container reads
 * is fetched on demand by the path under test.
 */
import type { Containerd } from '../harness/index.js';

/** The daemon's TOML for such a node; `indexKeys` are more `[index]` lines. */
export function rangeReadNodeConfig(c: Pick<Containerd, 'address' | 'hostsDir'>, spanBytes: number, indexKeys: string[] = []): string {
  return [
    `containerd_address = "${c.address}"`, 'containerd_namespace = "clip-test"',
    '[registry]', `config_path = "${c.hostsDir}"`,
    '[index]', 'gzip_checkpoints = true', `checkpoint_span_bytes = ${spanBytes}`, 'checkpoint_min_layer_bytes = 0', 'range_reads = true',
    'range_completion_bytes_per_sec = 0',
    ...indexKeys,
    '[prefetch]', 'enabled = false',
    '[cache]', 'extract_completed = false', '',
  ].join('\n');
}
