/**
 * The shipped deployments can host an in-place FUSE-server upgrade (README "State, restarts,
 * crashes"): the systemd unit is Type=notify with NotifyAccess=all and reloads through
 * upgrade-fuse-server; the Kubernetes DaemonSet surges a pod beside the old one, with the flags
 * and readiness probe that hand-over needs and no hostPort that would keep the surge pod off the node.
 */
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

const root = new URL('../../../../plugin-config/', import.meta.url);

/** `Key=value` lines of a unit file (the last one wins, as in systemd for these keys). */
function unitKeys(text: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) keys.set(m[1]!, m[2]!);
  }
  return keys;
}

t.test('systemd: the FUSE server unit follows its main process to the successor on reload', async (t) => {
  const unit = unitKeys(await readFile(new URL('clip-snapshotter-fuse.service', root), 'utf8'));
  t.equal(unit.get('Type'), 'notify');
  t.equal(unit.get('NotifyAccess'), 'all', 'the successor, not yet the main process, may send MAINPID=');
  t.match(unit.get('ExecReload'), /clip-snapshotter upgrade-fuse-server --config \S+/);
  const config = /--config (\S+)/.exec(unit.get('ExecStart') ?? '')?.[1];
  t.equal(/--config (\S+)/.exec(unit.get('ExecReload') ?? '')?.[1], config, 'the successor gets the same config');
  t.equal(unit.get('KillMode'), 'mixed');
  t.match(unit.get('ExecStop'), /kill -TERM \$MAINPID; while kill -0 \$MAINPID/, 'a stop waits for the main process, even one systemd did not fork');
  t.notOk(unit.has('WatchdogSec'), 'no watchdog: a successor gets no WATCHDOG_USEC');
  t.ok(Number(unit.get('TimeoutStartSec')) > 300, 'the reload outlasts upgrade-fuse-server\'s own deadline');
  const daemon = await readFile(new URL('clip-snapshotter.service', root), 'utf8');
  t.notMatch(daemon, /^(Requires|BindsTo|PartOf)=.*clip-snapshotter-fuse/m, 'the daemon unit never propagates to the FUSE server');
});

t.test('Kubernetes: the FUSE server DaemonSet surges a pod that takes over beside the old one', async (t) => {
  type Container = {
    args: string[];
    readinessProbe?: { exec?: { command: string[] } };
    ports?: unknown[];
    volumeMounts: Array<{ name: string; mountPath: string }>;
  };
  const docs = parseAllDocuments(await readFile(new URL('kubernetes/daemonset.yaml', root), 'utf8')).map((d) => d.toJS() as {
    metadata: { name: string };
    spec: {
      updateStrategy: { type: string; rollingUpdate?: { maxSurge?: number; maxUnavailable?: number } };
      template: { spec: { hostNetwork?: boolean; containers: Container[]; volumes: Array<{ name: string; emptyDir?: object; hostPath?: object }> } };
    };
  });
  const fuse = docs.find((d) => d.metadata.name === 'clip-snapshotter-fuse')!;
  t.same(fuse.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  const pod = fuse.spec.template.spec;
  const c = pod.containers[0]!;
  t.ok(c.args.includes('--take-over=auto'), 'the new pod takes over, or starts fresh on a new node');
  t.ok(c.args.includes('--after-hand-over=wait'), 'the old pod waits idle after handing over');
  const readyFile = c.args[c.args.indexOf('--ready-file') + 1]!;
  t.match(readyFile, /^\//);
  t.same(c.readinessProbe?.exec?.command, ['clip-snapshotter', 'ready', readyFile], 'ready only while this pod serves');
  const mount = c.volumeMounts.find((m) => readyFile.startsWith(`${m.mountPath}/`));
  const volume = pod.volumes.find((v) => v.name === mount?.name);
  t.ok(volume?.emptyDir, 'the ready file is in the pod\'s own emptyDir, never shared with the other pod');
  t.equal(pod.hostNetwork, true);
  t.notOk(c.ports?.length, 'no declared port: with hostNetwork it would be a hostPort the surge pod cannot get');
});
