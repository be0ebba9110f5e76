/**
 * `keel migrate`: creates the message database when the server does not have it yet (over the
 * server's `postgres` database; a role without CREATEDB is told how to create it by hand), applies
 * the numbered SQL migrations to it, then makes sure the lock database exists (default
 * `<database>_lock` on the same server) and is migrated. Safe to run while nodes start: the
 * migration runner claims each migration's row first.
 */
import { loadConfig, redactUrl } from '@keel/server';
import { ensureDatabase, ensureLockDatabase, migrate } from '@keel/store-pg';
import type { Output } from '../output';

export interface MigrateOptions {
  db?: string;
  lockDb?: string;
  config?: string;
  /** Where migrations live; defaults to the repository's migrations/ folder (tests). */
  migrationsDir?: string;
  /** Environment for KEEL_DB / KEEL_LOCK_DB / KEEL_CONFIG; defaults to process.env (tests). */
  env?: NodeJS.ProcessEnv;
}

export interface MigrateCommandResult {
  db: string;
  lockDb: string;
  /** True when this run created the message database. */
  created: boolean;
  applied: string[];
  current: number;
}

export async function runMigrate(options: MigrateOptions, output: Output): Promise<MigrateCommandResult> {
  // The database URLs resolve like a broker's (flags > KEEL_* > config file), so `keel migrate`
  // and `keel broker` given the same settings agree on where the schema goes.
  const cfg = loadConfig({
    argv: { db: options.db, lockDb: options.lockDb, config: options.config },
    env: options.env,
  });
  const created = await ensureDatabase(cfg.db);
  if (created) output.out(`${redactUrl(cfg.db)}: database created\n`);
  const result = await migrate({ connectionString: cfg.db, migrationsDir: options.migrationsDir });
  output.out(
    `${redactUrl(cfg.db)}: ${result.applied.length === 0 ? 'up to date' : `applied ${result.applied.join(', ')}`} (schema version ${result.current})\n`,
  );
  const lockDb = await ensureLockDatabase(cfg.db, cfg.lockDb);
  output.out(`${redactUrl(lockDb)}: lock database ready\n`);
  return { db: cfg.db, lockDb, created, applied: result.applied, current: result.current };
}
