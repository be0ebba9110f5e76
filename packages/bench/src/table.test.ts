import { formatNumber, formatTable } from './table';

describe('formatNumber', () => {
  it('groups thousands and rounds', () => {
    expect(formatNumber(12345.6)).toBe('12,346');
    expect(formatNumber(1.234, 2)).toBe('1.23');
    expect(formatNumber(Number.NaN)).toBe('-');
    expect(formatNumber(undefined)).toBe('-');
    expect(formatNumber(Number.POSITIVE_INFINITY)).toBe('inf');
  });
});

describe('formatTable', () => {
  it('aligns text left and numbers right under a rule', () => {
    const out = formatTable(
      [
        { header: 'run', value: (r: { run: string; rate: number; p99?: number }) => r.run },
        { header: 'msg/s', value: (r) => r.rate },
        { header: 'p99 ms', value: (r) => r.p99, decimals: 2 },
      ],
      [
        { run: '1', rate: 1234.4, p99: 3.14659 },
        { run: 'median', rate: 98, p99: undefined },
      ],
    );
    expect(out).toBe(
      [
        'run     msg/s  p99 ms',
        '------  -----  ------',
        '1       1,234    3.15',
        'median     98       -',
        '',
      ].join('\n'),
    );
  });

  it('prints only the header for no rows', () => {
    expect(formatTable([{ header: 'a', value: () => 1 }], [])).toBe('a\n-\n');
  });
});
