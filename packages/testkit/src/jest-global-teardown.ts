/**
 * Jest globalTeardown: stops what jest-global-setup.ts started. On a server we do not own
 * (KEEL_TEST_DATABASE_URL) it drops the run's template and any test database of this run that a
 * crashed test file left behind, and leaves the server running.
 */
import { Client } from 'pg';
import { GLOBAL_STATE_KEY, type GlobalState } from './jest-global-setup';
import { quoteIdent, testDatabasePrefix } from './test-env';

export default async function globalTeardown(): Promise<void> {
  const state = (globalThis as Record<symbol, unknown>)[GLOBAL_STATE_KEY] as GlobalState | undefined;
  if (!state) return;
  delete (globalThis as Record<symbol, unknown>)[GLOBAL_STATE_KEY];
  if (state.server.owned) {
    await state.server.stop();
    return;
  }
  const admin = new Client({ connectionString: state.server.adminUrl });
  admin.on('error', () => {});
  await admin.connect();
  try {
    const prefix = testDatabasePrefix(state.runId).replace(/_/g, '\\_');
    const res = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname = $1 OR datname LIKE $2 || '%'",
      [state.template, prefix],
    );
    for (const { datname } of res.rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(datname)} WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}
