/** Medians and spread for repeated measurements. */

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median (mean of the middle two for even n), min, max. */
export function spread(values: number[]): Spread {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[s.length - 1] as number, n: s.length };
}

/** `1.23 (1.10–1.40, n=5)` */
export function formatSpread(s: Spread, digits = 2, unit = ''): string {
  if (s.n === 0) return 'n/a';
  const f = (v: number): string => v.toFixed(digits);
  return `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)}, n=${s.n})`;
}

/** Round to `digits` decimals. */
export const round = (v: number, digits = 2): number => Math.round(v * 10 ** digits) / 10 ** digits;
