/**
 * Pure arithmetic over a drill's event times (ms since the epoch, in the order they happened).
 * It lives in @keel/bench (timeline.ts), which the bench's `failover` scenario shares.
 */
export { bucketCounts, countBetween, maxGapAround } from '@keel/bench';
