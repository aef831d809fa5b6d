/** The demo's view of the daemons' Prometheus counters. */

/** Counter lines from a Prometheus endpoint whose names mention one of `words` (empty if unreachable). */
export async function scrapeCounters(address: string, words: string[]): Promise<string[]> {
  if (address === '') return [];
  try {
    const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return [];
    const text = await res.text();
    return text.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '' && words.some((w) => l.includes(w)));
  } catch {
    return [];
  }
}
