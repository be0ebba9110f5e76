import { bucketCounts, countBetween, maxGapAround } from './drill-timeline';

describe('drill timeline arithmetic', () => {
  it('counts events per bucket, ignoring those outside', () => {
    expect(bucketCounts([1000, 1050, 1099, 1100, 1350, 999, 1400], 1000, 1400, 100)).toEqual([3, 1, 0, 1]);
    expect(bucketCounts([], 0, 250, 100)).toEqual([0, 0, 0]);
  });

  it('finds the longest pause around a fault', () => {
    const times = [0, 100, 200, 300, 2300, 2400, 2500, 9000];
    // last event before the fault at 250 is 200: the stall runs 300 -> 2300
    expect(maxGapAround(times, 250, 3000)).toBe(2000);
    // the window ends at 3000: the gap to 9000 counts only up to 3000
    expect(maxGapAround([0, 100, 2600], 150, 3000)).toBe(2500);
    // nothing after the fault: paused until the end of the window
    expect(maxGapAround([0, 100], 150, 1000)).toBe(900);
    // no events at all: the whole window
    expect(maxGapAround([], 100, 600)).toBe(500);
  });

  it('counts events in a half-open window (start, end]', () => {
    const times = [1, 2, 2, 3, 5, 8];
    expect(countBetween(times, 1, 3)).toBe(3);
    expect(countBetween(times, 0, Number.POSITIVE_INFINITY)).toBe(6);
    expect(countBetween(times, 8, 100)).toBe(0);
  });
});
