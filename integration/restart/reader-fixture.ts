/**
 * The fixture of the restart tests (issue 14): a registry with the `layered` image, a private
 * containerd, the daemon with the kernel FUSE driver, the image pulled lazily, and two containers
 * reading a 2 MB binary and a file of their lazy layers in a loop while the page cache is dropped
 * every 300 ms (so reads reach FUSE); one layer is never complete (range reads, checkpoints even
 * for small layers, background completion off). Each round is a line `ok <round> <md5> <md5>` or
 * `FAIL …` in a file per reader; `finishReaders` stops them and checks every line.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { createHarness, runClipCli, waitUntil, type Containerd, type Harness, type Snapshotter } from '../harness/index.js';
import { BUSYBOX_PATH, buildAndPushImages, type PushedImage } from '../images/index.js';

export interface RestartFixtureOptions {
  /**
   * Start the FUSE server before the daemon (which then gets `--no-spawn-fuse-server`), as a
   * service manager or pod does; `config` is the config file both use.
   */
  startFuseServer?: (p: { h: Harness; root: string; address: string; config: string }) => Promise<void>;
}

export interface RestartFixture {
  h: Harness;
  c: Containerd;
  snap: Snapshotter;
  config: string;
  layered: PushedImage;
  /** Both readers made 3 more rounds (each round reads through FUSE). */
  progressed(what: string): Promise<void>;
  /** A new container on the lazy image starts and reads the second layer's file. */
  newContainerStarts(t: Test, what: string): Promise<void>;
  /** Stop the readers; every round of each returned the right bytes, and each exited cleanly. */
  finishReaders(t: Test): Promise<void>;
}

/** Lines a reader wrote: `ok <round> <md5> <md5>` per round, or `FAIL <round> …`. */
async function rounds(path: string): Promise<string[]> {
  return existsSync(path) ? (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '') : [];
}

let seq = 0;

/** Start the stack, pull lazily, start the two readers and see them read. */
export async function startRestartFixture(t: Test, prefix: string, opts: RestartFixtureOptions = {}): Promise<RestartFixture> {
  const h = createHarness(t, prefix);
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort }, ['busybox', 'layered']);
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  // Checkpoints even for these small layers and no background completion: a layer read only where
  // the containers read it stays incomplete for the whole test, its reads served by range.
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, [
    `containerd_address = "${c.address}"`, 'containerd_namespace = "clip-test"',
    '[registry]', `config_path = "${c.hostsDir}"`, 'plain_http = true',
    '[index]', 'checkpoint_min_layer_bytes = 0', 'checkpoint_span_bytes = 65536', 'range_completion_bytes_per_sec = 0',
    // The FUSE driver whose connections can be handed to a new FUSE server.
    '[fuse_server]', 'driver = "kernel"',
    '',
  ].join('\n'));
  if (opts.startFuseServer) await opts.startFuseServer({ h, ...h.snapshotterPaths, config });
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config], externalFuseServer: opts.startFuseServer !== undefined });
  // containerd started first and may have dialed the daemon's socket before it listened; its
  // proxy then answers "connection refused" until its re-dial backoff ends (seen with a slow start
  // under systemd).
  await c.waitForSnapshotter('clip');
  const layered = images.layered;
  const indexed = await runClipCli(['index', layered.ref, '--plain-http', '--json', '--config', config], { allowFailure: true, timeoutMs: 180_000 });
  t.equal(indexed.code, 0, `indexed: ${indexed.stderr.slice(-300)}`);
  const pulled = await runClipCli(['pull', layered.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config], { allowFailure: true, timeoutMs: 180_000 });
  t.equal(pulled.code, 0, `pulled lazily: ${pulled.stderr.slice(-300)}`);
  t.equal((JSON.parse(pulled.stdout) as { lazy?: number }).lazy, 2, 'both layers lazy');

  // The bytes a reader must see: the host's busybox binary, and the second layer's file.
  const expected = `${createHash('md5').update(await readFile(BUSYBOX_PATH)).digest('hex')} ${createHash('md5').update('second layer\n').digest('hex')}`;
  const ctl = join(h.root, 'ctl');
  await mkdir(ctl, { recursive: true });
  const script = [
    'i=0',
    'while [ ! -e /ctl/stop ]; do',
    '  i=$((i+1))',
    '  a=$(md5sum /bin/busybox 2>&1) && b=$(md5sum /etc/layered.txt 2>&1)',
    '  if [ $? -eq 0 ]; then echo "ok $i ${a%% *} ${b%% *}" >> /ctl/$NAME; else echo "FAIL $i $a $b" >> /ctl/$NAME; fi',
    '  sleep 0.2',
    'done',
  ].join('\n');
  const readers = ['r1', 'r2'].map((name) =>
    c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), '--env', `NAME=${name}`, '--mount', `type=bind,src=${ctl},dst=/ctl,options=rbind:rw`, layered.ref, `reader-${name}`, 'sh', '-c', script], { allowFailure: true, timeoutMs: 840_000 }),
  );
  // Reads reach FUSE: every page of every file is dropped between the readers' rounds.
  let dropping = true;
  const dropper = (async () => {
    while (dropping) {
      await writeFile('/proc/sys/vm/drop_caches', '3');
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  t.teardown(async () => {
    dropping = false;
    await dropper;
  });
  const progressed = async (what: string): Promise<void> => {
    const before = await Promise.all(['r1', 'r2'].map((n) => rounds(join(ctl, n))));
    await waitUntil(`readers make 3 more rounds ${what}`, async () => {
      const now = await Promise.all(['r1', 'r2'].map((n) => rounds(join(ctl, n))));
      return now.every((lines, i) => lines.length >= before[i]!.length + 3);
    }, 120_000, 200);
  };
  await progressed('after starting');
  const status = JSON.parse((await runClipCli(['status', '--address', snap.address, '--json'], { timeoutMs: 30_000 })).stdout) as { layers: Array<{ layer: string; complete: boolean }> };
  const busyboxLayer = status.layers.find((l) => l.layer === layered.layers[0]!.digest);
  t.equal(busyboxLayer?.complete, false, 'the readers run on a layer that is not complete');

  return {
    h,
    c,
    snap,
    config,
    layered,
    progressed,
    newContainerStarts: async (t, what) => {
      // `ctr run --rm`; a run still going after the deadline is killed and fails (never a pass).
      const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), layered.ref, `restart-${++seq}`, 'cat', '/etc/layered.txt'], { allowFailure: true, timeoutMs: 120_000 });
      t.equal(res.stdout, 'second layer\n', `a new container starts ${what}: ${res.stderr.slice(-300)}`);
    },
    finishReaders: async (t) => {
      await writeFile(join(ctl, 'stop'), '');
      const results = await Promise.all(readers);
      for (const [i, name] of ['r1', 'r2'].entries()) {
        const lines = await rounds(join(ctl, name));
        const bad = lines.filter((l) => !l.startsWith('ok ') || l.split(' ').slice(2).join(' ') !== expected);
        t.ok(lines.length >= 9, `${name} read ${lines.length} rounds`);
        t.same(bad, [], `${name}: no read failed or returned wrong bytes`);
        t.equal(results[i]!.code, 0, `${name} exited cleanly: ${results[i]!.stderr.slice(-300)}`);
      }
    },
  };
}
