/**
 * A registry in its own network namespace behind a veth pair shaped with `tc tbf` on both ends
 * (this kernel has no netem). Addresses come from a private /30 that exists only on this pair.
 */
import { join } from 'node:path';
import { startRegistry } from '../harness/registry.js';
import { runCommand } from '../harness/run-command.js';
import type { Stack } from '../harness/stack.js';

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

/**
 * Create namespace + veth + tbf, start docker-registry inside; everything is removed at teardown.
 * With `storageDir` it serves another registry's storage (images pushed there over loopback).
 */
export async function startShapedRegistry(stack: Stack, rate = '100mbit', storageDir?: string): Promise<ShapedRegistry> {
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

  // The harness's registry, listening on the namespace's end of the pair (`ip netns exec` execs
  // it, so the pid the harness stops is the registry's).
  const reg = await startRegistry({ dir: join(stack.root, 'shaped-registry'), listen: { host: nsAddr, port: 5000 }, commandPrefix: ['ip', 'netns', 'exec', ns], ...(storageDir ? { storageDir } : {}) });
  stack.add('shaped registry', () => reg.stop());
  return { host: reg.host, hostPort: reg.hostPort, url: reg.url, logPath: reg.logPath, rate };
}
