/**
 * `keel migrate` against a real PostgreSQL: the jest global setup's server (KEEL_TEST_PG_ADMIN_URL)
 * or KEEL_TEST_DATABASE_URL. The command must start from an empty database, so this test creates
 * its own (not a clone of the migrated template) and drops it, with its lock database, afterwards.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '@keel/server';
import { Client } from 'pg';
import { bufferOutput } from '../output';
import { runMigrate } from './migrate';

const adminUrl = process.env.KEEL_TEST_PG_ADMIN_URL ?? process.env.KEEL_TEST_DATABASE_URL;
const migrationsDir = path.resolve(__dirname, '..', '..', '..', '..', 'migrations');
const migrationFiles = readdirSync(migrationsDir)
  .filter((f) => /^\d+_.+\.sql$/.test(f))
  .sort();

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function admin<T>(fn: (client: Client) => Promise<T>, url = adminUrl as string): Promise<T> {
  const client = new Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('keel migrate', () => {
  const name = `keel_cli_migrate_${process.pid}_${randomBytes(3).toString('hex')}`;
  let db: string;

  beforeAll(async () => {
    if (!adminUrl) {
      throw new Error(
        'keel migrate test needs a PostgreSQL: run jest with the testkit globalSetup or set KEEL_TEST_DATABASE_URL',
      );
    }
    db = withDatabase(adminUrl, name);
    await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  });

  afterAll(async () => {
    if (!adminUrl) return;
    await admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.query(`DROP DATABASE IF EXISTS "${name}_lock" WITH (FORCE)`);
    });
  });

  it('applies every migration to the database and to its <database>_lock, then is up to date', async () => {
    const output = bufferOutput();
    const result = await runMigrate({ db, env: {} }, output);
    expect(result.applied).toEqual(migrationFiles);
    expect(result.current).toBe(Number(migrationFiles[migrationFiles.length - 1]?.slice(0, 3)));
    expect(result.lockDb).toBe(withDatabase(adminUrl as string, `${name}_lock`));

    const ids = migrationFiles.map((f) => Number(f.slice(0, f.indexOf('_'))));
    for (const url of [db, result.lockDb]) {
      const rows = await admin(
        (c) => c.query<{ id: number; name: string }>('SELECT id, name FROM keel_migrations ORDER BY id'),
        url,
      );
      expect(rows.rows.map((r) => r.id)).toEqual(ids);
    }
    expect(output.stdout()).toContain(`applied ${migrationFiles.join(', ')}`);
    expect(output.stdout()).toContain(`${name}_lock: lock database ready`);

    const again = bufferOutput();
    const second = await runMigrate({ db, env: {} }, again);
    expect(second.applied).toEqual([]);
    expect(again.stdout()).toContain('up to date');
  });

  it('takes the database from KEEL_DB when --db is not given, and names a missing one', async () => {
    const output = bufferOutput();
    const result = await runMigrate({ env: { KEEL_DB: db } }, output);
    expect(result.db).toBe(db);
    expect(result.applied).toEqual([]);
    await expect(runMigrate({ env: {} }, bufferOutput())).rejects.toThrow(ConfigError);
    await expect(runMigrate({ env: {} }, bufferOutput())).rejects.toThrow('db: is required');
  });
});

describe('keel migrate on a server that does not have the database yet', () => {
  const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const name = `keel_cli_fresh_${suffix}`;
  const role = `keel_no_createdb_${suffix}`;

  afterAll(async () => {
    if (!adminUrl) return;
    await admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.query(`DROP DATABASE IF EXISTS "${name}_lock" WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS "${role}"`);
    });
  });

  it("creates the database over the server's postgres database, then migrates it and its lock database", async () => {
    const db = withDatabase(adminUrl as string, name);
    const output = bufferOutput();
    const result = await runMigrate({ db, env: {} }, output);
    expect(result.created).toBe(true);
    expect(result.applied).toEqual(migrationFiles);
    expect(output.stdout()).toContain(`${name}: database created`);
    expect(output.stdout()).toContain(`${name}_lock: lock database ready`);
    const found = await admin((c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]));
    expect(found.rowCount).toBe(1);

    const again = bufferOutput();
    const second = await runMigrate({ db, env: {} }, again);
    expect(second.created).toBe(false);
    expect(again.stdout()).not.toContain('database created');
  });

  it('says how to create the database when the role may not (no CREATEDB)', async () => {
    await admin((c) => c.query(`CREATE ROLE "${role}" LOGIN NOCREATEDB PASSWORD 'no-createdb'`));
    const u = new URL(withDatabase(adminUrl as string, `${name}_denied`));
    u.username = role;
    u.password = 'no-createdb';
    const err = await runMigrate({ db: u.toString(), env: {} }, bufferOutput()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: string }).code).toBe('STORE_ERROR');
    expect((err as Error).message).toContain(
      `database "${name}_denied" does not exist and ${role} may not create it`,
    );
    expect((err as Error).message).toContain(`CREATE DATABASE "${name}_denied" OWNER "${role}"`);
  });
});
