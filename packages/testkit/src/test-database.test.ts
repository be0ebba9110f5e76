import { Client } from 'pg';
import { createTestDatabase, useTestDatabase } from './test-database';

async function query<T extends Record<string, unknown>>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

describe('useTestDatabase', () => {
  const db = useTestDatabase();

  test('gives a migrated database and a migrated lock database', async () => {
    const tables = await query<{ table_name: string }>(
      db.url,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining(['activemq_lock', 'keel_messages', 'keel_migrations']),
    );
    const lockTables = await query<{ n: number }>(
      db.lockUrl,
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'activemq_lock'",
    );
    expect(lockTables[0]?.n).toBe(1);
    expect(db.lockName).toBe(`${db.name}_lock`);
  });
});

describe('createTestDatabase', () => {
  test('creates unique databases and drop() removes both', async () => {
    const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    if (!a || !b) throw new Error('unreachable');
    expect(a.name).not.toBe(b.name);
    // An open connection does not stop drop() (WITH (FORCE)).
    const open = new Client({ connectionString: a.url });
    open.on('error', () => {});
    await open.connect();
    await a.drop();
    await b.drop();
    await a.drop(); // idempotent
    await open.end().catch(() => {});
    const left = await query<{ n: number }>(
      a.adminUrl,
      'SELECT count(*)::int AS n FROM pg_database WHERE datname = ANY($1)',
      [[a.name, a.lockName, b.name, b.lockName]],
    );
    expect(left[0]?.n).toBe(0);
  });
});

describe('useTestDatabase before beforeAll', () => {
  const db = useTestDatabase();
  let early: unknown;
  try {
    void db.url; // at collection time, before beforeAll ran
  } catch (err) {
    early = err;
  }

  test('fields throw at collection time and are set in tests', () => {
    expect(String(early)).toMatch(/only from beforeAll/);
    expect(db.url).toContain(db.name);
  });
});
