import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { corked } from './pg-corked';

const db = useTestDatabase();

/** Counts the socket-level writes (one _write per lone chunk, one _writev per gathered batch). */
function countWrites(client: Client): { writes: number } {
  const stream = (client as unknown as { connection: { stream: Record<string, unknown> } }).connection.stream;
  const counter = { writes: 0 };
  for (const name of ['_write', '_writev']) {
    const original = stream[name] as (...args: unknown[]) => unknown;
    stream[name] = function (this: unknown, ...args: unknown[]) {
      counter.writes += 1;
      return original.apply(this, args);
    };
  }
  return counter;
}

async function pipelined(
  issue: (c: Client) => Promise<unknown>[],
): Promise<{ writes: number; rows: unknown[] }> {
  const client = new Client({ connectionString: db.url, pipeline: true } as ConstructorParameters<
    typeof Client
  >[0]);
  await client.connect();
  try {
    const counter = countWrites(client);
    const results = await Promise.all(issue(client));
    return { writes: counter.writes, rows: results.map((r) => (r as { rows: unknown[] }).rows[0]) };
  } finally {
    await client.end();
  }
}

const statements = (c: Client) => [
  c.query('BEGIN'),
  c.query({ name: 'corked_a', text: 'SELECT $1::int AS n', values: [1] }),
  c.query({ name: 'corked_b', text: 'SELECT $1::text AS s', values: ['two'] }),
  c.query('COMMIT'),
];

describe('corked pipelined statements', () => {
  it('leave in one socket write, with the same results', async () => {
    const plain = await pipelined(statements);
    const gathered = await pipelined((c) => corked(c, () => statements(c)));
    expect(gathered.rows).toEqual(plain.rows);
    expect(gathered.rows[1]).toEqual({ n: 1 });
    expect(gathered.rows[2]).toEqual({ s: 'two' });
    // Without corking pg writes every query at least on its own (each protocol message, unless
    // the socket is still busy with the previous one).
    expect(plain.writes).toBeGreaterThanOrEqual(4);
    expect(gathered.writes).toBe(1);
  });

  it('runs the statements as they are for a client without a stream', () => {
    expect(corked({}, () => 42)).toBe(42);
  });

  it('uncorks when issuing throws', () => {
    let corks = 0;
    const stream = { cork: () => corks++, uncork: () => corks-- };
    expect(() =>
      corked({ connection: { stream } }, () => {
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(corks).toBe(0);
  });
});
