import { FORWARD_COST_TARGET, formatForwardCost, forwardCost, summarizeForwardCost } from './forward-cost';

describe('forward cost (issue #25.5)', () => {
  it('is both brokers per forwarded message over broker A per local message, with and without Postgres', () => {
    const c = forwardCost({ A: 20, B: 1, postgres: 4 }, { A: 26, B: 24, postgres: 10 });
    expect(c.forwardedBrokersUs).toBe(50);
    expect(c.localBrokerUs).toBe(20);
    expect(c.ratio).toBe(2.5);
    expect(c.forwardedWithPostgresUs).toBe(60);
    expect(c.localWithPostgresUs).toBe(24);
    expect(c.ratioWithPostgres).toBe(2.5);
  });

  it('is NaN, not Infinity, when the local run cost nothing measurable', () => {
    expect(forwardCost({ A: 0, B: 0, postgres: 0 }, { A: 1, B: 1, postgres: 1 }).ratio).toBeNaN();
  });

  it('pairs runs, takes the median of every figure and judges the median against 1.5×', () => {
    const s = summarizeForwardCost(
      [
        { A: 20, B: 0, postgres: 2 },
        { A: 10, B: 0, postgres: 2 },
        { A: 20, B: 1, postgres: 2 },
      ],
      [
        { A: 20, B: 10, postgres: 8 }, // 1.5
        { A: 20, B: 20, postgres: 8 }, // 4
        { A: 16, B: 10, postgres: 8 }, // 1.3
      ],
    );
    expect(s.target).toBe(FORWARD_COST_TARGET);
    expect(s.runs.map((r) => r.ratio)).toEqual([1.5, 4, 1.3]);
    expect(s.median.ratio).toBe(1.5);
    expect(s.median.localBrokerUs).toBe(20);
    expect(s.median.forwardedBrokersUs).toBe(30);
    expect(s.met).toBe(true);
    // (38 / 22, 48 / 12, 34 / 22): median 38 / 22 ≈ 1.73
    expect(s.median.ratioWithPostgres).toBeCloseTo(38 / 22);
    expect(s.metWithPostgres).toBe(false);
  });

  it('is not met above the target', () => {
    const s = summarizeForwardCost([{ A: 20, B: 0, postgres: 0 }], [{ A: 26, B: 23, postgres: 0 }]);
    expect(s.median.ratio).toBeCloseTo(2.45);
    expect(s.met).toBe(false);
    expect(formatForwardCost(s.median)).toContain('target ≤ 1.5×: not met');
  });

  it('refuses unpaired runs', () => {
    expect(() => summarizeForwardCost([{ A: 1, B: 0, postgres: 0 }], [])).toThrow(RangeError);
    expect(() => summarizeForwardCost([], [])).toThrow(RangeError);
  });
});

describe('forward cost with the benchmark own Postgres processes', () => {
  it('counts postgresOwn instead of every postgres process when given', () => {
    const c = forwardCost(
      { A: 20, B: 0, postgres: 50, postgresOwn: 5 },
      { A: 30, B: 20, postgres: 90, postgresOwn: 10 },
    );
    expect(c.forwardedWithPostgresUs).toBe(60);
    expect(c.localWithPostgresUs).toBe(25);
  });
});
