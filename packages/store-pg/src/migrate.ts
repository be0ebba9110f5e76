/**
 * Forward-only schema migrations. Numbered files `NNN_name.sql` in the repository's `migrations/`
 * folder are applied in order, each in its own transaction, and recorded in `keel_migrations`.
 *
 * Nodes starting together are safe: each migration's transaction first takes a transaction-level
 * advisory lock on a fixed key, then claims the migration's row (INSERT) before running its SQL, so
 * exactly one node applies it and the others see the row and skip. A database whose recorded
 * schema is newer than the newest file we know is refused (graphile-worker `src/migrate.ts` does
 * the same), so an old node never writes to a schema it does not understand.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { StoreError } from '@keel/protocol';
import type { Client, ClientBase } from 'pg';
import { HostSelector } from './host-selection';
import { sqlState, toStoreError } from './pg-errors';
import { databaseOfUrl, userOfUrl, withDatabase } from './pg-url';

/** The advisory lock key all Keel migrators agree on ('keel' + 'migr' as two int32 halves). */
export const MIGRATION_LOCK_KEY = 0x6b65656c_6d696772n.toString();

export interface MigrationLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Migration {
  id: number;
  name: string;
  /** The file name, e.g. `001_initial.sql`. */
  file: string;
  sql: string;
}

export interface MigrateOptions {
  /** Used to open (and close) a client of our own when `client` is not given. */
  connectionString?: string;
  /** A connected client, not inside a transaction. Left open. */
  client?: ClientBase;
  /** Defaults to the nearest `migrations/` folder above this file (works from src and dist). */
  migrationsDir?: string;
  logger?: MigrationLogger;
}

export interface MigrateResult {
  /** File names applied by this call, in order. */
  applied: string[];
  /** The schema version after the call (the highest applied migration id, 0 if none). */
  current: number;
}

const MIGRATION_FILE = /^(\d+)_([A-Za-z0-9_.-]+)\.sql$/;
const SILENT: MigrationLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Walks up from this file to the first folder that holds `migrations/` with numbered SQL files. */
export function findMigrationsDir(from: string = __dirname): string {
  let dir = path.resolve(from);
  for (;;) {
    const candidate = path.join(dir, 'migrations');
    if (
      existsSync(candidate) &&
      statSync(candidate).isDirectory() &&
      readdirSync(candidate).some((f) => MIGRATION_FILE.test(f))
    ) {
      return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new StoreError(`no migrations/ folder found above ${from}`, 'STORE_ERROR');
    dir = parent;
  }
}

/** The migrations in dir, sorted by id. Rejects duplicate ids. */
export function loadMigrations(dir: string = findMigrationsDir()): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir)) {
    const m = MIGRATION_FILE.exec(file);
    if (!m) continue;
    migrations.push({
      id: Number(m[1]),
      name: m[2] as string,
      file,
      sql: readFileSync(path.join(dir, file), 'utf8'),
    });
  }
  migrations.sort((a, b) => a.id - b.id);
  for (let i = 1; i < migrations.length; i++) {
    const prev = migrations[i - 1] as Migration;
    const cur = migrations[i] as Migration;
    if (prev.id === cur.id)
      throw new StoreError(`two migrations share id ${cur.id}: ${prev.file} and ${cur.file}`, 'STORE_ERROR');
  }
  if (migrations.length === 0) throw new StoreError(`no migrations in ${dir}`, 'STORE_ERROR');
  return migrations;
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS keel_migrations (
  id          integer PRIMARY KEY,
  name        text NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
)`;

/** Applies the migrations the database has not seen yet. */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const logger = options.logger ?? SILENT;
  const migrations = loadMigrations(options.migrationsDir ?? findMigrationsDir());
  const latest = (migrations[migrations.length - 1] as Migration).id;

  let client: ClientBase;
  let own: Client | undefined;
  if (options.client) {
    client = options.client;
  } else if (options.connectionString) {
    try {
      own = await connectPrimary(options.connectionString, logger);
    } catch (err) {
      throw toStoreError(err, 'migrate: cannot connect');
    }
    own.on('error', (err) => logger.warn({ err: err.message }, 'migration connection error'));
    client = own;
  } else {
    throw new StoreError('migrate: connectionString or client is required', 'INVALID_ARGUMENT');
  }

  const applied: string[] = [];
  let current = 0;
  try {
    for (const migration of migrations) {
      await client.query('BEGIN');
      try {
        // Serialise all migrators of this database; released at COMMIT/ROLLBACK.
        await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
        await client.query(CREATE_TABLE);
        const res = await client.query<{ max: number | null }>('SELECT max(id) AS max FROM keel_migrations');
        current = res.rows[0]?.max ?? 0;
        if (current > latest) {
          throw new StoreError(
            `database schema is at version ${current} but this Keel only knows migrations up to version ${latest}; upgrade Keel`,
            'SCHEMA_TOO_NEW',
          );
        }
        // Claim the migration's row first: a second migrator that got here anyway stops on the key.
        const claim = await client.query(
          'INSERT INTO keel_migrations (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING',
          [migration.id, migration.name],
        );
        if (claim.rowCount === 0) {
          await client.query('COMMIT');
          continue;
        }
        logger.info({ migration: migration.file }, 'applying migration');
        await client.query(migration.sql);
        await client.query('COMMIT');
        applied.push(migration.file);
        current = Math.max(current, migration.id);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    }
    const res = await client.query<{ max: number | null }>('SELECT max(id) AS max FROM keel_migrations');
    current = res.rows[0]?.max ?? 0;
    if (applied.length > 0) logger.info({ applied, current }, 'migrations applied');
    else logger.debug({ current }, 'schema up to date');
    return { applied, current };
  } catch (err) {
    throw toStoreError(err, 'migrate');
  } finally {
    if (own) await own.end().catch(() => {});
  }
}

/** `<database>_lock`: the name of the lock database that goes with url's database. */
export function lockDatabaseUrl(url: string): string {
  const db = databaseName(url);
  if (!db)
    throw new StoreError(
      `database URL has no database name: cannot derive its lock database`,
      'INVALID_ARGUMENT',
    );
  return withDatabase(url, `${db}_lock`);
}

function databaseName(url: string): string {
  try {
    return databaseOfUrl(url);
  } catch (err) {
    throw new StoreError(`invalid database URL: ${(err as Error).message}`, 'INVALID_ARGUMENT');
  }
}

/** Connecting failed because the database does not exist (invalid_catalog_name, 3D000). */
function missingDatabase(err: unknown): boolean {
  return sqlState(err) === '3D000' || sqlState((err as { cause?: unknown } | null)?.cause) === '3D000';
}

/**
 * A client on url's read-write host: every host of a multi-host URL is tried in order
 * (host-selection.ts). Its 'error' events are swallowed until the caller adds its own listener.
 */
function connectPrimary(url: string, logger: MigrationLogger): Promise<Client> {
  return new HostSelector(url, { name: 'migrate', defaultTarget: 'read-write', logger }).connect({
    application_name: 'keel-migrate',
  });
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The same server and credentials as url, on database name. */
function onDatabase(url: string, name: string): string {
  return withDatabase(url, name);
}

/**
 * CREATE DATABASE name over a connection to adminUrl, unless it exists. Several callers at once are
 * fine: the loser of CREATE DATABASE gets duplicate_database (42P04) or a unique violation on
 * pg_database (23505), both tolerated. A role without CREATEDB gets insufficient_privilege (42501):
 * refused with a message that says how to create the database by hand. True when this call created it.
 */
async function createDatabaseIfMissing(
  adminUrl: string,
  name: string,
  logger: MigrationLogger,
  what: string,
): Promise<boolean> {
  let admin: Client | undefined;
  try {
    admin = await connectPrimary(adminUrl, logger);
    admin.on('error', (err) => logger.warn({ err: err.message }, `${what} connection error`));
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount !== 0) return false;
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
      logger.info({ database: name }, `created ${what}`);
      return true;
    } catch (err) {
      const code = sqlState(err);
      if (code === '42P04' || code === '23505') return false;
      if (code === '42501') {
        const user = userOfUrl(adminUrl) || 'this user';
        throw new StoreError(
          `${what} "${name}" does not exist and ${user} may not create it (${(err as Error).message}): ` +
            `create it as a superuser (CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(user)}) or grant ${user} CREATEDB`,
          'STORE_ERROR',
          { cause: err },
        );
      }
      throw err;
    }
  } catch (err) {
    throw toStoreError(err, `create ${what} ${name}`);
  } finally {
    await admin?.end().catch(() => {});
  }
}

/**
 * Makes sure url's database exists: when connecting to it fails with invalid_catalog_name (3D000,
 * `database "keel" does not exist`), creates it over a connection to the same server's `postgres`
 * database (`template1` if there is no `postgres`). True when this call created it.
 */
export async function ensureDatabase(url: string, logger: MigrationLogger = SILENT): Promise<boolean> {
  const name = databaseName(url);
  try {
    const probe = await connectPrimary(url, logger);
    await probe.end().catch(() => {});
    return false;
  } catch (err) {
    if (!missingDatabase(err)) throw toStoreError(err, `connect to ${name}`);
  }
  for (const maintenance of ['postgres', 'template1']) {
    try {
      return await createDatabaseIfMissing(onDatabase(url, maintenance), name, logger, 'database');
    } catch (err) {
      // no such maintenance database: try the next one
      if (sqlState((err as { cause?: unknown }).cause) !== '3D000' || maintenance === 'template1') throw err;
    }
  }
  return false;
}

/**
 * Makes sure the lock database exists (`<database>_lock` on the same server unless lockDbUrl is
 * given, created over a connection to url's database) and is migrated. Returns its URL.
 */
export async function ensureLockDatabase(
  url: string,
  lockDbUrl?: string,
  logger: MigrationLogger = SILENT,
): Promise<string> {
  const target = lockDbUrl ?? lockDatabaseUrl(url);
  await createDatabaseIfMissing(url, databaseName(target), logger, 'lock database');
  await migrate({ connectionString: target, logger });
  return target;
}
