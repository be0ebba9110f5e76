/**
 * Statistics for the bench: latency samples and their percentiles, rates, and the median of
 * repeated runs. Pure functions, no clock.
 */

/**
 * The p-th percentile (0 < p <= 100) of values already sorted ascending, by the nearest-rank
 * method: the smallest value such that at least p% of the values are at or below it. NaN when empty.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

/** Percentile of unsorted values (sorts a copy). */
export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(Float64Array.from(values).sort(), p);
}

/** The median: the middle value, or the mean of the two middle values. NaN when empty. */
export function median(values: readonly number[]): number {
  const finite = values.filter((v) => !Number.isNaN(v));
  const n = finite.length;
  if (n === 0) return Number.NaN;
  const s = [...finite].sort((a, b) => a - b);
  const mid = n >> 1;
  return n % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Events per second over `elapsedMs`; 0 when nothing happened, NaN for a zero interval with events. */
export function ratePerSecond(count: number, elapsedMs: number): number {
  if (count === 0) return 0;
  if (!(elapsedMs > 0)) return Number.NaN;
  return (count * 1000) / elapsedMs;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Collects latency samples in milliseconds in a growable Float64Array (8 bytes a sample). */
export class LatencyRecorder {
  private samples = new Float64Array(1024);
  private n = 0;

  get count(): number {
    return this.n;
  }

  record(ms: number): void {
    if (this.n === this.samples.length) {
      const next = new Float64Array(this.samples.length * 2);
      next.set(this.samples);
      this.samples = next;
    }
    this.samples[this.n++] = ms;
  }

  summary(): LatencySummary {
    const sorted = this.samples.slice(0, this.n).sort();
    let sum = 0;
    for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
    return {
      count: this.n,
      p50: percentileSorted(sorted, 50),
      p99: percentileSorted(sorted, 99),
      max: this.n === 0 ? Number.NaN : sorted[this.n - 1]!,
      mean: this.n === 0 ? Number.NaN : sum / this.n,
    };
  }
}

/** For each key present in every record, the median across records (runs). */
export function medianOfRecords(records: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (records.length === 0) return out;
  for (const key of Object.keys(records[0]!)) {
    if (records.every((r) => typeof r[key] === 'number')) out[key] = median(records.map((r) => r[key]!));
  }
  return out;
}
