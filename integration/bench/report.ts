/** results.md (Markdown tables) and chart.svg (horizontal bars, one group per measurement). */
import type { BenchEntry, BenchResults, Cell, ChartGroup } from './types.js';

const cell = (c: Cell): string => (c === null ? '—' : String(c).replace(/\|/g, '\\|'));

function entryMarkdown(e: BenchEntry): string {
  const lines = [`## ${e.title}`, ''];
  if (e.status !== 'ok') lines.push(`**${e.status === 'error' ? 'failed' : 'not measured'}**: ${e.error ?? ''}`, '');
  if (e.rows.length > 0) {
    lines.push(`| ${e.columns.map(cell).join(' | ')} |`, `|${e.columns.map(() => '---').join('|')}|`);
    for (const r of e.rows) lines.push(`| ${r.map(cell).join(' | ')} |`);
    lines.push('');
  }
  for (const n of e.notes) lines.push(`- ${n}`);
  if (e.notes.length > 0) lines.push('');
  return lines.join('\n');
}

/** The whole Markdown report. */
export function renderMarkdown(r: BenchResults): string {
  const head = [
    `# clip-snapshotter benchmarks${r.quick ? ' (quick mode)' : ''}`,
    '',
    `Run ${r.started} → ${r.finished} on Linux ${r.host.kernel}, ${r.host.cpus} CPUs, Node ${r.host.node}. ` +
      'Medians with (min–max, n) spread; every baseline was measured in the same run. Chart: `chart.svg`.',
    '',
  ];
  return [...head, ...r.entries.map(entryMarkdown)].join('\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** One SVG with a block of bars per chart group; each group has its own scale. */
export function renderSvg(groups: ChartGroup[]): string {
  const width = 760;
  const labelW = 230;
  const barMax = width - labelW - 140;
  const barH = 18;
  let y = 40;
  const parts: string[] = [`<text x="10" y="24" font-size="16" font-weight="bold">clip-snapshotter benchmarks</text>`];
  for (const g of groups) {
    parts.push(`<text x="10" y="${y + 14}" font-size="13" font-weight="bold">${esc(g.title)} (${g.lowerIsBetter ? 'lower' : 'higher'} is better)</text>`);
    y += 22;
    const max = Math.max(...g.bars.map((b) => b.value), 1e-9);
    for (const b of g.bars) {
      const w = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * barMax) : 0;
      const color = b.baseline ? '#9aa5b1' : '#2f7ed8';
      parts.push(
        `<text x="${labelW - 8}" y="${y + 13}" font-size="12" text-anchor="end">${esc(b.label)}</text>`,
        `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"/>`,
        `<text x="${labelW + w + 6}" y="${y + 13}" font-size="12">${Number.isFinite(b.value) ? esc(`${fmt(b.value)} ${b.unit}`) : 'n/a'}</text>`,
      );
      y += barH + 4;
    }
    y += 14;
  }
  const legend = `<rect x="10" y="${y}" width="12" height="12" fill="#2f7ed8"/><text x="28" y="${y + 10}" font-size="12">clip</text>` +
    `<rect x="80" y="${y}" width="12" height="12" fill="#9aa5b1"/><text x="98" y="${y + 10}" font-size="12">baseline (same run)</text>`;
  y += 24;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n${legend}\n</svg>\n`;
}
