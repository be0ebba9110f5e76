/**
 * Pure arithmetic over event times (ms, in the order they happened): per-bucket counts, the
 * longest pause around a fault, counts in a window. Shared by the bench's `failover` scenario and
 * `keel drill` (packages/cli re-exports these from drill-timeline.ts).
 */

/** Counts of `times` per `bucketMs` from startMs to endMs (the last bucket may be partial). */
export function bucketCounts(
  times: readonly number[],
  startMs: number,
  endMs: number,
  bucketMs: number,
): number[] {
  const n = Math.max(0, Math.ceil((endMs - startMs) / bucketMs));
  const buckets = new Array<number>(n).fill(0);
  for (const t of times) {
    const i = Math.floor((t - startMs) / bucketMs);
    if (i >= 0 && i < n) buckets[i] = (buckets[i] as number) + 1;
  }
  return buckets;
}

/**
 * The longest stretch without an event around a failure at faultMs: from the last event before
 * the fault, through every event up to untilMs. With no event after the fault before untilMs, the
 * pause runs to untilMs. `times` must be sorted ascending.
 */
export function maxGapAround(times: readonly number[], faultMs: number, untilMs: number): number {
  let i = lowerBound(times, faultMs);
  let previous = i > 0 ? (times[i - 1] as number) : faultMs;
  let longest = 0;
  for (; i < times.length && (times[i] as number) <= untilMs; i++) {
    const t = times[i] as number;
    longest = Math.max(longest, t - previous);
    previous = t;
  }
  // The stretch from the last event in the window to the next one (or to untilMs, whichever is first).
  const next = i < times.length ? Math.min(times[i] as number, untilMs) : untilMs;
  return Math.max(longest, next - previous);
}

/** Events with startMs < t <= endMs, for whole-millisecond times (Date.now()). `times` sorted ascending. */
export function countBetween(times: readonly number[], startMs: number, endMs: number): number {
  return lowerBound(times, endMs + 1) - lowerBound(times, startMs + 1);
}

/** The first event at or after faultMs, or null. `times` sorted ascending. */
export function firstAtOrAfter(times: readonly number[], faultMs: number): number | null {
  const i = lowerBound(times, faultMs);
  return i < times.length ? (times[i] as number) : null;
}

/** Index of the first element >= value (times sorted ascending). */
function lowerBound(times: readonly number[], value: number): number {
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((times[mid] as number) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
