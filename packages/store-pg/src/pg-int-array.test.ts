import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { pgIntArray } from './pg-int-array';

describe('pgIntArray', () => {
  test('writes integers as an array literal, in one pass', () => {
    expect(pgIntArray([1, 2, 3])).toBe('{1,2,3}');
    expect(pgIntArray([])).toBe('{}');
    expect(pgIntArray([-5, 0, Number.MAX_SAFE_INTEGER])).toBe(`{-5,0,${Number.MAX_SAFE_INTEGER}}`);
  });

  test('leaves an array with anything but safe integers to pg', () => {
    const odd = [1, Number.NaN];
    expect(pgIntArray(odd)).toBe(odd);
    expect(pgIntArray([1.5])).toEqual([1.5]);
    expect(pgIntArray([2 ** 53])).toEqual([2 ** 53]);
  });

  describe('on a real Postgres', () => {
    const db = useTestDatabase();
    test('the literal reads back as the same bigint[] and int[] values pg would send', async () => {
      const c = new Client({ connectionString: db.url });
      await c.connect();
      try {
        const ids = [1, 42, Number.MAX_SAFE_INTEGER, -7];
        const { rows } = await c.query<{ a: string[]; b: number[]; n: number }>(
          'SELECT $1::bigint[] AS a, $2::int[] AS b, cardinality($3::bigint[]) AS n',
          [pgIntArray(ids), pgIntArray([3, 2, 1]), pgIntArray([])],
        );
        expect(rows[0]!.a).toEqual(ids.map(String));
        expect(rows[0]!.b).toEqual([3, 2, 1]);
        expect(rows[0]!.n).toBe(0);
      } finally {
        await c.end();
      }
    });
  });
});
