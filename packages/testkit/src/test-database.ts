/**
 * A fresh database per test file, cloned from the template the jest global setup migrated
 * (graphile-worker `__tests__/helpers.ts` does the same), plus its `<name>_lock` database (the
 * master lock lives in a small database of its own; it is cloned from the same template, so it has
 * every table, activemq_lock included).
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import {
  ADMIN_URL_ENV,
  quoteIdent,
  RUN_ID_ENV,
  TEMPLATE_ENV,
  testDatabasePrefix,
  withDatabase,
} from './test-env';

export interface TestDatabase {
  /** URL of the fresh, migrated database. */
  readonly url: string;
  /** URL of `<name>_lock`, migrated too. */
  readonly lockUrl: string;
  readonly name: string;
  readonly lockName: string;
  /** The server's superuser URL (the `postgres` database), for tests that need it. */
  readonly adminUrl: string;
  /** Drops both databases WITH (FORCE), ending any connection still open. Safe to call twice. */
  drop(): Promise<void>;
}

export interface CreateTestDatabaseOptions {
  /** Defaults to KEEL_TEST_PG_ADMIN_URL (set by the jest global setup). */
  adminUrl?: string;
  /** Defaults to KEEL_TEST_PG_TEMPLATE (set by the jest global setup). */
  template?: string;
}

let counter = 0;

function uniqueName(): string {
  const runId = process.env[RUN_ID_ENV] ?? 'norun';
  const worker = process.env.JEST_WORKER_ID ?? '0';
  // <= 63 bytes with the `_lock` suffix: keel_t_ + 8 + _ + worker + _ + pid + _ + n + _ + 6
  return `${testDatabasePrefix(runId)}${worker}_${process.pid}_${++counter}_${randomBytes(3).toString('hex')}`;
}

/** Retries CREATE DATABASE ... TEMPLATE while another session still uses the template (55006). */
async function cloneTemplate(admin: Client, name: string, template: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function createTestDatabase(options: CreateTestDatabaseOptions = {}): Promise<TestDatabase> {
  const adminUrl = options.adminUrl ?? process.env[ADMIN_URL_ENV];
  const template = options.template ?? process.env[TEMPLATE_ENV];
  if (!adminUrl || !template) {
    throw new Error(
      `createTestDatabase: ${ADMIN_URL_ENV}/${TEMPLATE_ENV} are not set; run jest with the testkit's globalSetup (jest.config.js)`,
    );
  }
  const name = uniqueName();
  const lockName = `${name}_lock`;
  const admin = new Client({ connectionString: adminUrl, application_name: 'keel-testkit' });
  admin.on('error', () => {});
  await admin.connect();
  try {
    await cloneTemplate(admin, name, template);
    await cloneTemplate(admin, lockName, template);
  } catch (err) {
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`).catch(() => {});
    throw err;
  } finally {
    await admin.end();
  }
  let dropped = false;
  return {
    url: withDatabase(adminUrl, name),
    lockUrl: withDatabase(adminUrl, lockName),
    name,
    lockName,
    adminUrl,
    async drop() {
      if (dropped) return;
      dropped = true;
      const c = new Client({ connectionString: adminUrl, application_name: 'keel-testkit' });
      c.on('error', () => {});
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
        await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(lockName)} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Registers beforeAll/afterAll for a fresh database per test file. The returned object's fields
 * are filled in beforeAll; reading them earlier (at module load) throws.
 *
 *   const db = useTestDatabase();
 *   test('x', async () => { const pool = new Pool({ connectionString: db.url }); ... });
 */
export function useTestDatabase(options: CreateTestDatabaseOptions = {}): TestDatabase {
  let current: TestDatabase | undefined;
  const get = (): TestDatabase => {
    if (!current) throw new Error('useTestDatabase(): the database exists only from beforeAll on');
    return current;
  };
  beforeAll(async () => {
    current = await createTestDatabase(options);
  });
  afterAll(async () => {
    await current?.drop();
  });
  return {
    get url() {
      return get().url;
    },
    get lockUrl() {
      return get().lockUrl;
    },
    get name() {
      return get().name;
    },
    get lockName() {
      return get().lockName;
    },
    get adminUrl() {
      return get().adminUrl;
    },
    drop: () => get().drop(),
  };
}
