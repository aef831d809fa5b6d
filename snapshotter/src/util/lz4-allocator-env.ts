/**
 * lz4-napi carries its own allocator (mimalloc), which reserves a 1 GiB arena and, by default,
 * keeps freed pages resident for a while: compressing and inflating a multi-GB layer's 4 MiB chunks
 * on the thread pool left ~600 MB resident in that arena in the daemon (issue 15). mimalloc reads
 * its options from the environment when the addon loads, so they are set before it does (`lz4.ts`
 * imports this module first): freed pages go back to the kernel at once. An operator's own
 * MIMALLOC_* settings win.
 */
const DEFAULTS: Record<string, string> = { MIMALLOC_PURGE_DELAY: '0', MIMALLOC_PURGE_DECOMMITS: '1' };

for (const [name, value] of Object.entries(DEFAULTS)) {
  if (process.env[name] === undefined) process.env[name] = value;
}

/** The mimalloc options this process sets unless the environment already has them (tests). */
export const LZ4_ALLOCATOR_ENV: Readonly<Record<string, string>> = DEFAULTS;
