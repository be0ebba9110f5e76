import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KeelError } from '@keel/protocol';
import { Client } from 'pg';
import { ensureLockDatabase, findMigrationsDir, loadMigrations, lockDatabaseUrl, migrate } from './migrate';

const adminUrl = (): string => {
  const url = process.env.KEEL_TEST_PG_ADMIN_URL;
  if (!url) throw new Error('KEEL_TEST_PG_ADMIN_URL is not set (jest global setup)');
  return url;
};

function withDb(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function sql<T extends Record<string, unknown>>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

const created: string[] = [];
let n = 0;

/** An empty database (from template0), dropped after the file. */
async function emptyDatabase(): Promise<string> {
  const name = `keel_mig_${process.pid}_${Date.now().toString(36)}_${++n}`;
  created.push(name, `${name}_lock`);
  await sql(adminUrl(), `CREATE DATABASE ${name} TEMPLATE template0`);
  return withDb(adminUrl(), name);
}

afterAll(async () => {
  for (const name of created) await sql(adminUrl(), `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

/** Everything about the public schema that a migration could change, plus the migration rows. */
async function schemaSnapshot(url: string): Promise<unknown> {
  const columns = await sql(
    url,
    `SELECT table_name, column_name, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2`,
  );
  const indexes = await sql(
    url,
    `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`,
  );
  const constraints = await sql(
    url,
    `SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`,
  );
  const migrations = await sql(url, 'SELECT id, name, applied_at FROM keel_migrations ORDER BY id');
  return { columns, indexes, constraints, migrations };
}

describe('migration files', () => {
  test('finds the repository migrations/ folder from the package sources', () => {
    const dir = findMigrationsDir();
    expect(path.basename(dir)).toBe('migrations');
    const migrations = loadMigrations(dir);
    expect(migrations[0]).toMatchObject({ id: 1, name: 'initial', file: '001_initial.sql' });
  });

  test('rejects two files with the same number', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-mig-'));
    try {
      writeFileSync(path.join(dir, '001_a.sql'), 'SELECT 1;');
      writeFileSync(path.join(dir, '001_b.sql'), 'SELECT 1;');
      expect(() => loadMigrations(dir)).toThrow(/share id 1/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('lockDatabaseUrl appends _lock to the database name', () => {
    expect(lockDatabaseUrl('postgres://u:p@h:5/keel?sslmode=disable')).toBe(
      'postgres://u:p@h:5/keel_lock?sslmode=disable',
    );
  });
});

describe('migrate', () => {
  test('applies everything to an empty database; a second run applies and changes nothing', async () => {
    const url = await emptyDatabase();
    const files = loadMigrations().map((m) => m.file);
    const first = await migrate({ connectionString: url });
    expect(first.applied).toEqual(files);
    expect(first.current).toBe(loadMigrations().at(-1)?.id);
    const before = await schemaSnapshot(url);

    const second = await migrate({ connectionString: url });
    expect(second).toEqual({ applied: [], current: first.current });
    expect(await schemaSnapshot(url)).toEqual(before);
  });

  test('concurrent migrators on an empty database all succeed and apply each migration once', async () => {
    const url = await emptyDatabase();
    const files = loadMigrations().map((m) => m.file);
    const results = await Promise.all([1, 2, 3, 4].map(() => migrate({ connectionString: url })));
    expect(results.flatMap((r) => r.applied).sort()).toEqual(files);
    for (const r of results) expect(r.current).toBe(loadMigrations().at(-1)?.id);
    const rows = await sql<{ id: number }>(url, 'SELECT id FROM keel_migrations ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual(loadMigrations().map((m) => m.id));
  });

  test('refuses a database whose schema is newer than it knows, naming both versions', async () => {
    const url = await emptyDatabase();
    const { current } = await migrate({ connectionString: url });
    await sql(url, "INSERT INTO keel_migrations (id, name) VALUES (999, 'from_the_future')");
    const err = await migrate({ connectionString: url }).catch((e: unknown) => e);
    expect(KeelError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ name: 'StoreError', code: 'SCHEMA_TOO_NEW', retryable: false });
    expect((err as Error).message).toContain('version 999');
    expect((err as Error).message).toContain(`version ${current}`);
  });

  test('applies only the new files of an explicit directory, in numeric order, on a given client', async () => {
    const url = await emptyDatabase();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-mig-'));
    const client = new Client({ connectionString: url });
    await client.connect();
    try {
      writeFileSync(path.join(dir, '1_first.sql'), 'CREATE TABLE t (x int); INSERT INTO t VALUES (1);');
      writeFileSync(path.join(dir, 'README.md'), 'not a migration');
      expect(await migrate({ client, migrationsDir: dir })).toEqual({ applied: ['1_first.sql'], current: 1 });
      writeFileSync(path.join(dir, '10_tenth.sql'), 'INSERT INTO t VALUES (10);');
      writeFileSync(path.join(dir, '2_second.sql'), 'INSERT INTO t VALUES (2);');
      expect(await migrate({ client, migrationsDir: dir })).toEqual({
        applied: ['2_second.sql', '10_tenth.sql'],
        current: 10,
      });
      expect((await client.query('SELECT x FROM t')).rows.map((r) => r.x)).toEqual([1, 2, 10]);
    } finally {
      await client.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a failing migration is rolled back and not recorded; earlier ones stay', async () => {
    const url = await emptyDatabase();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-mig-'));
    try {
      writeFileSync(path.join(dir, '001_ok.sql'), 'CREATE TABLE ok (x int);');
      writeFileSync(
        path.join(dir, '002_bad.sql'),
        'CREATE TABLE half (x int); SELECT nonsense FROM nowhere;',
      );
      const err = await migrate({ connectionString: url, migrationsDir: dir }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_ERROR', retryable: false });
      expect((err as Error).message).toContain('42P01');
      const rows = await sql<{ id: number }>(url, 'SELECT id FROM keel_migrations ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual([1]);
      const half = await sql<{ n: number }>(
        url,
        "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'half'",
      );
      expect(half[0]?.n).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unreachable server is a retryable STORE_UNAVAILABLE', async () => {
    const u = new URL(adminUrl());
    u.port = '1'; // nothing listens on port 1
    const err = await migrate({ connectionString: u.toString() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
  });
});

describe('ensureLockDatabase', () => {
  test('creates <database>_lock once even when nodes race, and migrates it', async () => {
    const url = await emptyDatabase();
    const results = await Promise.all([1, 2, 3].map(() => ensureLockDatabase(url)));
    expect(new Set(results)).toEqual(new Set([lockDatabaseUrl(url)]));
    const tables = await sql<{ n: number }>(
      lockDatabaseUrl(url),
      "SELECT count(*)::int AS n FROM pg_tables WHERE tablename = 'activemq_lock'",
    );
    expect(tables[0]?.n).toBe(1);
    // Again, when it exists: nothing to do.
    expect(await ensureLockDatabase(url)).toBe(lockDatabaseUrl(url));
  });
});
