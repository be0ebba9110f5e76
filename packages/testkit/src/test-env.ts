/**
 * The environment variables the jest global setup hands to test workers (jest copies
 * `process.env` changes made in globalSetup to its workers). No `@keel/*` imports here: the
 * global setup loads this file outside jest's module mapper.
 */

/** Superuser URL of the run's PostgreSQL server (the `postgres` database). */
export const ADMIN_URL_ENV = 'KEEL_TEST_PG_ADMIN_URL';
/** Name of the migrated template database every test database is cloned from. */
export const TEMPLATE_ENV = 'KEEL_TEST_PG_TEMPLATE';
/** A short id of this jest run; every database it creates starts with `keel_t_<id>_`. */
export const RUN_ID_ENV = 'KEEL_TEST_RUN_ID';

/** Prefix of the test databases created by the run `runId`. */
export function testDatabasePrefix(runId: string): string {
  return `keel_t_${runId}_`;
}

export function templateDatabaseName(runId: string): string {
  return `keel_tpl_${runId}`;
}

/** Double-quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** url with its database (path) replaced by name. */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(name)}`;
  return u.toString();
}
