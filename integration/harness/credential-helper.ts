/**
 * A docker credential helper of the tests (`docker-credential-<name>`, the protocol docker's
 * `credHelpers` and `credsStore` run): `get` reads a registry host on stdin and prints
 * `{"ServerURL","Username","Secret"}` for the hosts it knows, "credentials not found" otherwise.
 * Every host asked is appended to a calls file, so a test can tell the helper was (or was not) used.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCredentialHelper {
  /** `name` as config.json `credHelpers` names it (the program is `docker-credential-<name>`). */
  name: string;
  /** The directory holding the program: put it first in the PATH of whoever runs the helper. */
  binDir: string;
  /** The program's path (it holds the secrets it answers with). */
  path: string;
  /** An environment with `binDir` first in PATH. */
  env: NodeJS.ProcessEnv;
  /** A docker config.json (under `binDir`'s parent) whose `credHelpers` send `hosts` to this helper. */
  dockerConfigFor(hosts: string[]): string;
  /** The hosts it was asked for so far, in order. */
  calls(): string[];
}

/** Write the helper under `dir`, answering `credentials` (`host:port` → username and secret). */
export function writeCredentialHelper(dir: string, name: string, credentials: Record<string, { username: string; password: string }>): TestCredentialHelper {
  const binDir = join(dir, 'bin');
  mkdirSync(binDir, { recursive: true });
  const callsPath = join(dir, `${name}.calls`);
  const path = join(binDir, `docker-credential-${name}`);
  const answers = Object.entries(credentials)
    .map(([host, c]) => `  ${JSON.stringify(host)}) printf '%s' ${shellQuote(JSON.stringify({ ServerURL: host, Username: c.username, Secret: c.password }))}; exit 0 ;;\n`)
    .join('');
  writeFileSync(path, `#!/bin/sh
[ "$1" = get ] || exit 3
read host
echo "$host" >> ${shellQuote(callsPath)}
case "$host" in
${answers}esac
echo "credentials not found in native keychain"
exit 1
`);
  chmodSync(path, 0o755);
  return {
    name,
    binDir,
    path,
    env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
    dockerConfigFor: (hosts) => {
      const config = join(dir, `docker-config-${name}.json`);
      writeFileSync(config, JSON.stringify({ credHelpers: Object.fromEntries(hosts.map((h) => [h, name])) }));
      return config;
    },
    calls: () => (existsSync(callsPath) ? readFileSync(callsPath, 'utf8').split('\n').filter(Boolean) : []),
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
