import { forwardRanges } from './forward-ranges';

describe('forwardRanges', () => {
  it('joins consecutive ids of each origin into closed ranges, in any order, duplicates once', () => {
    const r = forwardRanges([
      { origin: 'east', id: 7 },
      { origin: 'west', id: 7 },
      { origin: 'east', id: 5 },
      { origin: 'east', id: 6 },
      { origin: 'east', id: 6 },
      { origin: 'east', id: 10 },
      { origin: 'east', id: 2 ** 40 + 3 },
      { origin: 'east', id: 2 ** 40 + 2 },
    ]);
    const rows = r.origins.map((o, i) => [o, r.lo[i], r.hi[i]]);
    expect(rows).toEqual([
      ['east', 5, 7],
      ['east', 10, 10],
      ['east', 2 ** 40 + 2, 2 ** 40 + 3],
      ['west', 7, 7],
    ]);
  });

  it('is empty for no forwards', () => {
    expect(forwardRanges([])).toEqual({ origins: [], lo: [], hi: [] });
  });

  it('keeps a round of 500 consecutive forwards as one range', () => {
    const forwards = Array.from({ length: 500 }, (_, i) => ({ origin: 'nbB', id: 1000 + i }));
    expect(forwardRanges(forwards)).toEqual({ origins: ['nbB'], lo: [1000], hi: [1499] });
  });
});
