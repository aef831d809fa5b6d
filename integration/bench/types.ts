/** The shape of bench-results/results.json. */

export type Cell = string | number | null;

/** One bar of the chart: a measured value next to its baseline. */
export interface Bar {
  label: string;
  value: number;
  /** Shown after the value, e.g. "s" or "MB/s". */
  unit: string;
  /** Bars of one group share a scale. */
  baseline?: boolean;
}

export interface ChartGroup {
  title: string;
  /** Whether smaller is better (shown in the title). */
  lowerIsBetter: boolean;
  bars: Bar[];
}

export interface BenchEntry {
  id: string;
  title: string;
  status: 'ok' | 'error' | 'not_measured';
  error?: string;
  columns: string[];
  rows: Cell[][];
  notes: string[];
  charts: ChartGroup[];
  /** Raw numbers for machines. */
  raw: Record<string, unknown>;
  duration_s?: number;
}

export interface BenchResults {
  started: string;
  finished: string;
  quick: boolean;
  host: { kernel: string; cpus: number; node: string };
  entries: BenchEntry[];
}

/** An empty entry to fill in. */
export function newEntry(id: string, title: string, columns: string[]): BenchEntry {
  return { id, title, status: 'ok', columns, rows: [], notes: [], charts: [], raw: {} };
}
