import { bucketCounts, countBetween, firstAtOrAfter, maxGapAround } from './timeline';

describe('timeline arithmetic', () => {
  it('counts events per bucket, ignoring those outside', () => {
    expect(bucketCounts([1000, 1050, 1099, 1100, 1350, 999, 1400], 1000, 1400, 100)).toEqual([3, 1, 0, 1]);
    expect(bucketCounts([0.5, 99.9, 100.1], 0, 200, 100)).toEqual([2, 1]);
  });

  it('finds the longest pause around a fault, with fractional times too', () => {
    expect(maxGapAround([0, 100, 200, 300, 2300, 2400], 250, 3000)).toBe(2000);
    expect(maxGapAround([0, 10.5, 130.25, 140], 12, 1000)).toBeCloseTo(860);
    expect(maxGapAround([0, 10.5, 130.25, 140, 1000, 1010], 12, 1010)).toBeCloseTo(1000 - 140);
    expect(maxGapAround([], 100, 600)).toBe(500);
  });

  it('finds the first event at or after a fault', () => {
    expect(firstAtOrAfter([1, 5, 9], 5)).toBe(5);
    expect(firstAtOrAfter([1, 5, 9], 5.5)).toBe(9);
    expect(firstAtOrAfter([1, 5, 9], 10)).toBeNull();
  });

  it('counts whole-millisecond events in (start, end]', () => {
    expect(countBetween([1, 2, 2, 3, 5, 8], 1, 3)).toBe(3);
  });
});
