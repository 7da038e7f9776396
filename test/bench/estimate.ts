/**
 * The benchmark's estimator: of many samples of CPU time per request, the mean of the least disturbed
 * quarter (the lowest values; at least one). Interference on a shared machine only ever adds time, so
 * the low end is where a server's own cost shows; the mean of a quarter, rather than the minimum alone,
 * keeps one lucky round (or the 10 ms tick of the CPU clock) from deciding the answer.
 */
export function leastDisturbed(values: readonly number[]): number {
  if (values.length === 0) throw new Error('no samples');
  const sorted = [...values].sort((a, b) => a - b);
  const quarter = sorted.slice(0, Math.max(1, Math.round(sorted.length / 4)));
  return quarter.reduce((sum, value) => sum + value, 0) / quarter.length;
}
