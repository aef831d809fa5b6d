/** The one place a command turns the `[registry]` config into RegistryClient options. */
import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { RegistryClientOptions } from '../registry/index.js';

/** Options for the process's RegistryClient: hosts.toml, every credential source, timeouts. */
export function registryClientOptions(r: Config['registry'], logger: Logger, overrides: Partial<RegistryClientOptions> = {}): RegistryClientOptions {
  return {
    ...(r.configPath !== '' ? { configPath: r.configPath } : {}),
    ...(r.dockerConfig !== '' ? { dockerConfig: r.dockerConfig } : {}),
    ...(r.credentialProviderConfig !== '' ? { credentialProviders: { configPath: r.credentialProviderConfig, binDir: r.credentialProviderBinDir } } : {}),
    credentialPluginTimeoutMs: r.credentialPluginTimeoutMs,
    plainHttp: r.plainHttp,
    platform: r.platform,
    timeoutMs: r.timeoutMs,
    maxRetries: r.maxRetries,
    logger,
    ...overrides,
  };
}
