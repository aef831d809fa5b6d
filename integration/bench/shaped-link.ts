/**
 * A registry in its own network namespace behind a veth pair shaped with `tc tbf` on both ends
 * (this kernel has no netem). Addresses come from a private /30 that exists only on this pair.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import type { Stack } from '../harness/stack.js';
import { ManagedProcess } from '../harness/managed-process.js';
import { runCommand } from '../harness/run-command.js';
import { waitUntil } from '../harness/wait.js';

export interface ShapedRegistry {
  host: string;
  hostPort: string;
  url: string;
  logPath: string;
  rate: string;
}

const ip = (args: string[]): Promise<unknown> => runCommand('ip', args, { timeoutMs: 15_000 });

/** A /30 in 10.231.0.0/16 not used by any address or route on this host. */
async function pickSubnet(): Promise<[string, string]> {
  const used = (await runCommand('ip', ['-4', 'addr'])).stdout + (await runCommand('ip', ['-4', 'route'])).stdout;
  for (let i = process.pid % 16000; ; i = (i + 1) % 16000) {
    const [a, b] = [Math.floor(i / 64), (i % 64) * 4];
    const prefix = `10.231.${a}.`;
    if (!used.includes(`${prefix}${b}/`) && !used.includes(`${prefix}${b + 1}`) && !used.includes(`${prefix}${b + 2}`)) return [`${prefix}${b + 1}`, `${prefix}${b + 2}`];
  }
}

function probe(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/v2/`, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}

/** Create namespace + veth + tbf, start docker-registry inside; everything is removed at teardown. */
export async function startShapedRegistry(stack: Stack, rate = '100mbit'): Promise<ShapedRegistry> {
  const tag = String(process.pid % 100000);
  const ns = `clipbench${tag}`;
  const [hostDev, nsDev] = [`cbh${tag}`, `cbr${tag}`];
  const [hostAddr, nsAddr] = await pickSubnet();
  await ip(['netns', 'add', ns]);
  stack.add(`netns ${ns}`, async () => {
    await runCommand('ip', ['netns', 'del', ns], { allowFailure: true });
    await runCommand('ip', ['link', 'del', hostDev], { allowFailure: true });
  });
  await ip(['link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev]);
  await ip(['link', 'set', nsDev, 'netns', ns]);
  await ip(['addr', 'add', `${hostAddr}/30`, 'dev', hostDev]);
  await ip(['link', 'set', hostDev, 'up']);
  const inNs = (args: string[]): Promise<unknown> => ip(['netns', 'exec', ns, 'ip', ...args]);
  await inNs(['addr', 'add', `${nsAddr}/30`, 'dev', nsDev]);
  await inNs(['link', 'set', nsDev, 'up']);
  await inNs(['link', 'set', 'lo', 'up']);
  const tbf = ['root', 'tbf', 'rate', rate, 'burst', '128kb', 'latency', '100ms'];
  await runCommand('tc', ['qdisc', 'replace', 'dev', hostDev, ...tbf]);
  await runCommand('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', nsDev, ...tbf]);

  const dir = join(stack.root, 'shaped-registry');
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const cfg = join(dir, 'config.yml');
  writeFileSync(cfg, `version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\nhttp:\n  addr: ${nsAddr}:5000\n  secret: clip-bench\n`);
  const logPath = join(dir, 'registry.log');
  // `ip netns exec` execs the command, so the pid we stop is the registry's.
  const proc = new ManagedProcess({ command: 'ip', args: ['netns', 'exec', ns, 'docker-registry', 'serve', cfg], logPath });
  stack.add('shaped registry', () => proc.stop());
  const url = `http://${nsAddr}:5000`;
  await waitUntil(`registry in ${ns} at ${url} (log ${logPath})`, () => probe(url), 15_000).catch((err: unknown) => {
    throw new Error(`${String(err)}\n${readFileSync(logPath, 'utf8').slice(-1000)}`);
  });
  return { host: `${nsAddr}:5000`, hostPort: `${nsAddr}:5000`, url, logPath, rate };
}
