/** Plain-text tables for terminal summaries. */

/** Render rows under a header with columns padded to their widest cell. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

/** Write the table to stdout. */
export function printTable(header: string[], rows: string[][]): void {
  process.stdout.write(formatTable(header, rows));
}
