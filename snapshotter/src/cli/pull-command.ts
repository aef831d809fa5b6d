/** `clip-snapshotter pull IMAGE_REF`: pull through containerd's API the way CRI does. */
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH, isConfigError, loadConfig, type Config } from '../config/index.js';
import { ContainerdClient, RegistryImageSource, pullImage, type LayerPullResult } from '../containerd/index.js';
import { messageOf } from '../errors/index.js';
import { createLogger } from '../log/index.js';
import { RegistryClient } from '../registry/index.js';
import { parsePlatform } from '../registry/platform.js';
import { formatReference, parseReference, type ImageReference } from '../registry/reference.js';
import { registryClientOptions } from './registry-options.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

export const PULL_USAGE = `usage: clip-snapshotter pull IMAGE_REF [--address CONTAINERD_SOCKET] [--namespace NS]
                             [--snapshotter NAME] [--config FILE] [--plain-http] [--hosts-dir DIR]
Registry access (hosts.toml, credentials, TLS) follows the [registry] section of the config;
--hosts-dir overrides registry.config_path.
`;

interface PullArgs {
  ref: ImageReference;
  address: string;
  namespace: string;
  snapshotter: string;
  plainHttp: boolean;
  hostsDir: string;
  config: Config;
}

async function parsePullArgs(args: string[]): Promise<PullArgs> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      address: { type: 'string' },
      namespace: { type: 'string' },
      snapshotter: { type: 'string' },
      config: { type: 'string' },
      'plain-http': { type: 'boolean' },
      'hosts-dir': { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 1 || positionals[0] === undefined) throw new UsageError('exactly one IMAGE_REF is required');
  const config = await loadConfig(values.config ?? DEFAULT_CONFIG_PATH, values.config === undefined);
  return {
    ref: parseReference(positionals[0]),
    address: values.address ?? config.containerdAddress,
    namespace: values.namespace ?? config.containerdNamespace,
    snapshotter: values.snapshotter ?? 'clip',
    plainHttp: values['plain-http'] ?? config.registry.plainHttp,
    hostsDir: values['hosts-dir'] ?? config.registry.configPath,
    config,
  };
}

class UsageError extends Error {}

const describeLayer = (l: LayerPullResult): string =>
  l.mode === 'full' ? `layer ${l.index} ${l.digest}: pulled in full (not lazy)\n`
    : l.mode === 'lazy' ? `layer ${l.index} ${l.digest}: lazy\n` : `layer ${l.index} ${l.digest}: already present\n`;

/** Run `pull`; returns 0 on success, 1 on failure, 2 on bad usage. */
export async function pullCommand(args: string[]): Promise<number> {
  let a: PullArgs;
  try {
    a = await parsePullArgs(args);
  } catch (err) {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || isConfigError(err);
    process.stderr.write(`clip-snapshotter pull: ${messageOf(err)}\n${usage ? PULL_USAGE : ''}`);
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
  const logger = createLogger(a.config.logLevel === 'info' ? 'warn' : a.config.logLevel);
  const client = new ContainerdClient({ address: a.address, namespace: a.namespace, logger });
  const registry = new RegistryClient(registryClientOptions(a.config.registry, logger, {
    plainHttp: a.plainHttp,
    ...(a.hostsDir !== '' ? { configPath: a.hostsDir } : {}),
  }));
  try {
    const summary = await pullImage({
      client,
      source: new RegistryImageSource(registry, a.ref.domain, a.ref.repository),
      imageRef: formatReference(a.ref),
      reference: a.ref.digest ?? a.ref.tag ?? 'latest',
      snapshotter: a.snapshotter,
      platform: parsePlatform(a.config.registry.platform),
      logger,
      onLayer: (l) => process.stderr.write(describeLayer(l)),
    });
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return EXIT_OK;
  } catch (err) {
    process.stderr.write(`clip-snapshotter pull ${formatReference(a.ref)}: ${messageOf(err)}\n`);
    return EXIT_FAILURE;
  } finally {
    client.close();
    await registry.close();
  }
}
