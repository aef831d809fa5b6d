/** `clip-snapshotter index IMAGE_REF`: build every layer's clip index and push them as an artifact. */
import { parseArgs } from 'node:util';
import { indexImage, listPlatformManifests, type IndexedImage, type IndexProgress } from '../artifact/index.js';
import { DEFAULT_CONFIG_PATH, isConfigError, loadConfig, type Config } from '../config/index.js';
import { messageOf } from '../errors/index.js';
import { createLogger } from '../log/index.js';
import { registryClientOptions } from './registry-options.js';
import { RegistryClient, formatPlatform, formatReference, parsePlatform, parseReference, type ImageReference, type Platform } from '../registry/index.js';
import { randomAccessObserver } from '../zran/index.js';
import { clipLimitsOf } from './clip-limits.js';
import { formatBytes } from '../util/format-bytes.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

export const INDEX_USAGE = `usage: clip-snapshotter index IMAGE_REF [--config FILE] [--plain-http]
                              [--platform OS/ARCH[/VARIANT] | --all-platforms] [--concurrency N] [--json]
`;

interface IndexArgs {
  ref: ImageReference;
  config: Config;
  plainHttp: boolean;
  platform: Platform;
  allPlatforms: boolean;
  concurrency: number;
  json: boolean;
}

class UsageError extends Error {}

async function parseIndexArgs(args: string[]): Promise<IndexArgs> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      'plain-http': { type: 'boolean' },
      platform: { type: 'string' },
      'all-platforms': { type: 'boolean' },
      concurrency: { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1 || positionals[0] === undefined) throw new UsageError('exactly one IMAGE_REF is required');
  if (values.platform !== undefined && values['all-platforms'] === true) throw new UsageError('--platform and --all-platforms exclude each other');
  const concurrency = Number(values.concurrency ?? '3');
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`--concurrency ${values.concurrency}: want an integer from 1 to 64`);
  const config = await loadConfig(values.config ?? DEFAULT_CONFIG_PATH, values.config === undefined);
  return {
    ref: parseReference(positionals[0]),
    config,
    plainHttp: values['plain-http'] ?? config.registry.plainHttp,
    platform: parsePlatform(values.platform ?? config.registry.platform),
    allPlatforms: values['all-platforms'] ?? false,
    concurrency,
    json: values.json ?? false,
  };
}

/** Run `index`; returns 0 on success, 1 on failure, 2 on bad usage or configuration. */
export async function indexCommand(args: string[]): Promise<number> {
  let a: IndexArgs;
  try {
    a = await parseIndexArgs(args);
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true || isConfigError(err);
    process.stderr.write(`clip-snapshotter index: ${messageOf(err)}\n${usage ? INDEX_USAGE : ''}`);
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
  const logger = createLogger(a.config.logLevel === 'info' ? 'warn' : a.config.logLevel);
  const client = new RegistryClient(registryClientOptions(a.config.registry, logger, { plainHttp: a.plainHttp, platform: a.platform }));
  const board = process.stderr.isTTY === true ? new ProgressBoard(process.stderr) : undefined;
  const started = Date.now();
  try {
    const results = await indexAll(client, a, board);
    board?.finish();
    const summary = summarize(a, results, Date.now() - started);
    process.stdout.write(process.stdout.isTTY === true && !a.json ? humanSummary(results) : `${JSON.stringify(summary)}\n`);
    return EXIT_OK;
  } catch (err) {
    board?.finish();
    process.stderr.write(`clip-snapshotter index ${formatReference(a.ref)}: ${messageOf(err)}\n`);
    return EXIT_FAILURE;
  } finally {
    await client.close();
  }
}

type Indexed = IndexedImage & { platform: string | undefined };

async function indexAll(client: RegistryClient, a: IndexArgs, board: ProgressBoard | undefined): Promise<Indexed[]> {
  const ix = a.config.index;
  const checkpoints = ix.gzipCheckpoints || ix.zstdFrameTables
    ? { compressedObserver: () => randomAccessObserver({ gzip: ix.gzipCheckpoints, zstd: ix.zstdFrameTables, spanBytes: ix.checkpointSpanBytes, minLayerBytes: ix.checkpointMinLayerBytes }) }
    : {};
  const opts = { concurrency: a.concurrency, limits: clipLimitsOf(a.config), ...checkpoints, ...(board ? { onProgress: (e: IndexProgress) => board.update(e) } : {}) };
  if (!a.allPlatforms) {
    return [{ ...(await indexImage(client, a.ref, { ...opts, platform: a.platform })), platform: undefined }];
  }
  const out: Indexed[] = [];
  for (const m of await listPlatformManifests(client, a.ref)) {
    out.push({ ...(await indexImage(client, m.reference, opts)), platform: m.platform ? formatPlatform(m.platform) : undefined });
  }
  return out;
}

function summarizeOne(r: Indexed): Record<string, unknown> {
  return {
    ...(r.platform !== undefined ? { platform: r.platform } : {}),
    subject: r.subject.digest,
    artifact: r.artifact.digest,
    pushed: r.pushed,
    layers: r.layers.map((l) => ({ digest: l.digest, diffId: l.diffId, entries: l.entries, indexBytes: l.index.length, reused: l.reused })),
  };
}

function summarize(a: IndexArgs, results: Indexed[], durationMs: number): Record<string, unknown> {
  const image = formatReference(a.ref);
  if (!a.allPlatforms && results[0] !== undefined) return { image, ...summarizeOne(results[0]), durationMs };
  return { image, manifests: results.map(summarizeOne), durationMs };
}

function humanSummary(results: Indexed[]): string {
  return results.map((r) => {
    const built = r.layers.filter((l) => !l.reused).length;
    const head = `${r.platform ?? r.subject.digest}: ${r.layers.length} layers (${built} indexed, ${r.layers.length - built} reused) → ${r.artifact.digest}${r.pushed ? '' : ' (already published)'}\n`;
    return head + r.layers.map((l) => `  ${l.digest}  ${l.entries} entries  ${formatBytes(l.index.length)} index${l.reused ? '  reused' : ''}\n`).join('');
  }).join('');
}

/** One line per layer on a terminal, redrawn in place at most ten times a second. */
class ProgressBoard {
  #out: NodeJS.WriteStream;
  #lines: string[] = [];
  #base = 0;
  #drawn = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }

  update(e: IndexProgress): void {
    switch (e.type) {
      case 'image':
        this.#base = this.#lines.length;
        this.#lines.push(`${e.subject.digest.slice(0, 19)}  ${e.layers.length} layers`, ...e.layers.map((l) => `  ${short(l.digest)}  waiting`));
        break;
      case 'layer-start':
        this.#set(e.layer, `  ${short(e.digest)}  ${bar(0, e.totalBytes)}`);
        break;
      case 'layer-bytes':
        this.#set(e.layer, `  ${short(e.digest)}  ${bar(e.bytes, e.totalBytes)}`);
        break;
      case 'layer-done':
        this.#set(e.layer, `  ${short(e.digest)}  ${e.reused ? 'reused' : 'indexed'}  ${e.entries} entries, ${formatBytes(e.indexBytes)} index`);
        break;
      default: {
        const never: never = e;
        return never;
      }
    }
    this.#timer ??= setTimeout(() => this.#draw(), 100);
  }

  finish(): void {
    this.#draw();
  }

  #set(layer: number, text: string): void {
    this.#lines[this.#base + 1 + layer] = text;
  }

  #draw(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : '';
    const width = this.#out.columns > 1 ? this.#out.columns - 1 : 200;
    this.#out.write(up + this.#lines.map((l) => `\r\x1b[2K${l.slice(0, width)}\n`).join(''));
    this.#drawn = this.#lines.length;
  }
}

const short = (digest: string): string => digest.slice(0, 19);

function bar(bytes: number, total: number): string {
  const width = 24;
  const frac = total > 0 ? Math.min(1, bytes / total) : 0;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${formatBytes(bytes)} / ${formatBytes(total)}`;
}
