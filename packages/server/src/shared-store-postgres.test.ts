import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parsePgUrl } from '@keel/store-pg';
import { Client } from 'pg';
import { loadConfig } from './config';
import {
  claimSharedStore,
  findPostgresBindir,
  recordedPostmasterPid,
  SHARED_STORE_OWNER_FILE,
  SharedStorePostgres,
} from './shared-store-postgres';

const quiet = { info() {}, warn() {}, error() {} };
const describeIfPg = findPostgresBindir() ? describe : describe.skip;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function query<T>(url: string, sql: string): Promise<T[]> {
  const c = new Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

describe('claimSharedStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'keel-store-claim-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('claims an unowned store and accepts the same lock directory again', () => {
    const store = path.join(dir, 'store');
    claimSharedStore(store, path.join(dir, 'lock'), 'a');
    claimSharedStore(store, path.join(dir, 'lock'), 'b');
    const owner = JSON.parse(readFileSync(path.join(store, SHARED_STORE_OWNER_FILE), 'utf8'));
    expect(owner.lockDir).toBe(path.join(dir, 'lock'));
  });

  it('refuses a store owned by another lock directory, naming both', () => {
    const store = path.join(dir, 'store');
    claimSharedStore(store, path.join(dir, 'lock-1'), 'a');
    expect(() => claimSharedStore(store, path.join(dir, 'lock-2'), 'b')).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: expect.stringMatching(/storeDir: .*belongs to lock directory .*lock-1.*lock-2/),
      }),
    );
  });
});

describeIfPg('SharedStorePostgres (real PostgreSQL binaries)', () => {
  let dir: string;
  const started: SharedStorePostgres[] = [];
  const make = (node: string, lockDir = path.join(dir, 'lock')) => {
    const pg = new SharedStorePostgres({ storeDir: path.join(dir, 'store'), lockDir, node, logger: quiet });
    started.push(pg);
    return pg;
  };

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'keel-shared-store-'));
    chmodSync(dir, 0o755); // Postgres runs as user postgres when we are root
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((pg) => pg.stop('immediate').catch(() => {})));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('initdb on first use, then serves over its Unix socket; a committed row survives a SIGKILL of the postmaster (crash recovery on the next start)', async () => {
    const a = make('a');
    await a.start();
    const pid = a.postmasterPid as number;
    expect(pid).toBeGreaterThan(0);
    // libpq's socket form (percent-encoded directory as the host), as the node's pools parse it.
    expect(parsePgUrl(a.url).hosts).toEqual([{ host: a.socketDir, port: 5432 }]);
    expect(recordedPostmasterPid(a.dataDir)).toBe(pid);
    await query(a.url, 'CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000)');
    const unexpected = new Promise<string>((resolve) => a.onUnexpectedExit(resolve));
    process.kill(pid, 'SIGKILL');
    await expect(unexpected).resolves.toMatch(/stopped unexpectedly \(postmaster killed by SIGKILL\)/);

    const b = make('b');
    await b.start(); // retries while the killed postmaster's backends still hold its shared memory
    expect(b.postmasterPid).not.toBe(pid);
    const rows = await query<{ n: string }>(b.url, 'SELECT count(*) AS n FROM t');
    expect(Number(rows[0]?.n)).toBe(1000);
  }, 120_000);

  it('stopNow stops the postmaster at once and is not reported as unexpected', async () => {
    const a = make('a');
    await a.start();
    const pid = a.postmasterPid as number;
    let reported = false;
    a.onUnexpectedExit(() => {
      reported = true;
    });
    expect(a.stopNow('lost the lock')).toBe(true);
    await a.exited();
    expect(alive(pid)).toBe(false);
    expect(a.postmasterPid).toBeNull();
    expect(reported).toBe(false);
  }, 60_000);

  it('a new holder stops a postmaster left running on the data directory by an earlier holder', async () => {
    const a = make('a');
    await a.start();
    const old = a.postmasterPid as number;
    const b = make('b');
    await b.start(); // as after a holder died without its postmaster: the lock is b's now
    expect(alive(old)).toBe(false);
    expect(b.postmasterPid).not.toBe(old);
    expect(await query(b.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
  }, 60_000);

  it('refuses to start on a store owned by another lock directory', async () => {
    const c = make('c', path.join(dir, 'another-lock'));
    await expect(c.start()).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(c.postmasterPid).toBeNull();
  });
});

describe('storeDir in the configuration', () => {
  const base = { name: 'n', locker: 'file', lockDir: '/shared/lock' };
  it('needs no db with --store-dir and --locker file', () => {
    const cfg = loadConfig({ argv: { ...base, storeDir: '/shared/store' }, env: {} });
    expect(cfg.storeDir).toBe('/shared/store');
    expect(cfg.db).toBe('');
  });
  it('refuses --store-dir with --db, and without the file locker; still needs --db without --store-dir', () => {
    expect(() => loadConfig({ argv: { ...base, storeDir: '/s', db: 'postgres://h/db' }, env: {} })).toThrow(
      /storeDir: cannot be combined with db/,
    );
    expect(() => loadConfig({ argv: { name: 'n', storeDir: '/s' }, env: {} })).toThrow(
      /storeDir: needs --locker file and --lock-dir/,
    );
    expect(() => loadConfig({ argv: base, env: {} })).toThrow(/db: is required/);
    expect(loadConfig({ argv: { ...base }, env: { KEEL_STORE_DIR: '/e' } }).storeDir).toBe('/e');
  });
});
