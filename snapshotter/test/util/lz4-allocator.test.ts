import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./lz4-allocator-child.js', import.meta.url));

/** Run the child with `env` added; its arena RSS and the purge delay it saw. */
function run(env: Record<string, string>): { arenaKiB: number; purgeDelay: string } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MIMALLOC_'))) as Record<string, string>;
  return JSON.parse(execFileSync(process.execPath, ['--expose-gc', child], { env: { ...base, ...env }, encoding: 'utf8' })) as { arenaKiB: number; purgeDelay: string };
}

t.test('LZ4 work returns its allocator arena\'s freed pages to the kernel; an operator\'s MIMALLOC_* settings win', async (t) => {
  const ours = run({});
  // mimalloc's own defaults, as an operator could set them: freed pages stay resident.
  const theirs = run({ MIMALLOC_PURGE_DELAY: '10', MIMALLOC_PURGE_DECOMMITS: '0' });
  t.equal(ours.purgeDelay, '0', 'set before the addon loaded');
  t.equal(theirs.purgeDelay, '10', 'the operator\'s value kept');
  t.ok(ours.arenaKiB >= 0 && theirs.arenaKiB > 0, `the arena was found (${ours.arenaKiB} / ${theirs.arenaKiB} KiB)`);
  // Less, not a ratio: under load the two runs measured 346-383 vs 440-496 MB, a 1.15-1.43x margin.
  // (ContentCache chunks no longer take this path: util/lz4-into.ts, which keeps nothing.)
  t.ok(ours.arenaKiB < theirs.arenaKiB, `less of the arena resident with our settings: ${ours.arenaKiB} vs ${theirs.arenaKiB} KiB`);
});
