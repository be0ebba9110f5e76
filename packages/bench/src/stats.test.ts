import {
  LatencyRecorder,
  median,
  medianOfRecords,
  percentile,
  percentileSorted,
  ratePerSecond,
} from './stats';

describe('percentiles (nearest rank)', () => {
  const oneToHundred = Array.from({ length: 100 }, (_, i) => i + 1);

  it('picks the smallest value with at least p% at or below it', () => {
    expect(percentileSorted(oneToHundred, 50)).toBe(50);
    expect(percentileSorted(oneToHundred, 99)).toBe(99);
    expect(percentileSorted(oneToHundred, 100)).toBe(100);
    expect(percentileSorted(oneToHundred, 0.5)).toBe(1);
    expect(percentileSorted([7], 99)).toBe(7);
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([10, 20, 30, 40], 75)).toBe(30);
  });

  it('is NaN for no values and rejects p outside (0, 100]', () => {
    expect(percentileSorted([], 50)).toBeNaN();
    expect(() => percentileSorted([1], 0)).toThrow(RangeError);
    expect(() => percentileSorted([1], 101)).toThrow(RangeError);
  });
});

describe('median', () => {
  it('takes the middle value or the mean of the middle two, ignoring NaN', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5, Number.NaN, 1, 3])).toBe(3);
    expect(median([])).toBeNaN();
  });

  it('of records: per key present in every record', () => {
    expect(medianOfRecords([{ a: 1, b: 10 }, { a: 5, b: 30 }, { a: 3 }])).toEqual({ a: 3 });
    expect(
      medianOfRecords([
        { a: 1, b: 10 },
        { a: 3, b: 20 },
      ]),
    ).toEqual({ a: 2, b: 15 });
    expect(medianOfRecords([])).toEqual({});
  });
});

describe('rates', () => {
  it('counts per second', () => {
    expect(ratePerSecond(5000, 2000)).toBe(2500);
    expect(ratePerSecond(0, 0)).toBe(0);
    expect(ratePerSecond(3, 0)).toBeNaN();
  });
});

describe('LatencyRecorder', () => {
  it('grows past its first buffer and summarises', () => {
    const r = new LatencyRecorder();
    for (let i = 3000; i >= 1; i--) r.record(i / 10);
    const s = r.summary();
    expect(s.count).toBe(3000);
    expect(s.p50).toBe(150);
    expect(s.p99).toBe(297);
    expect(s.max).toBe(300);
    expect(s.mean).toBeCloseTo(150.05, 6);
  });

  it('summarises nothing as NaN', () => {
    const s = new LatencyRecorder().summary();
    expect(s.count).toBe(0);
    expect(s.p50).toBeNaN();
    expect(s.max).toBeNaN();
  });
});
