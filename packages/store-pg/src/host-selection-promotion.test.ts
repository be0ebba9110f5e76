import { type PostgresPair, startPostgresPair } from '@keel/testkit';
import { Client } from 'pg';
import { HostSelector } from './host-selection';
import { ensureLockDatabase, migrate } from './migrate';
import { RowLocker } from './row-locker';

/**
 * Issue #20.2 on a real primary and synchronous streaming standby: the primary's postmaster is
 * SIGKILLed, the standby promoted; the selector, a pool and the row locker find the new primary
 * through the host list, and what was committed before the kill is there.
 */
jest.setTimeout(120_000);
let pair: PostgresPair;

beforeAll(async () => {
  pair = await startPostgresPair({ synchronous: true });
});
afterAll(async () => {
  await pair?.stop();
});

async function scalar(c: Client, text: string): Promise<unknown> {
  return Object.values((await c.query(text)).rows[0] ?? {})[0];
}

it('a standby list refuses, then follows a promotion; committed rows and the lock survive it', async () => {
  // The roles as they are now (pair.primary/standby name the current ones, they swap at promotion).
  const { primary, standby } = pair;
  const url = `postgres://postgres@${pair.hostList}/keel?target_session_attrs=read-write&connect_timeout=2`;
  // The standby alone: "no read-write host among …".
  const standbyOnly = new HostSelector(
    `postgres://postgres@127.0.0.1:${standby.port}/postgres?target_session_attrs=read-write`,
    { name: 'store' },
  );
  await expect(standbyOnly.connect()).rejects.toThrow(
    `no read-write host among 127.0.0.1:${standby.port} (127.0.0.1:${standby.port}: a standby (in recovery))`,
  );

  const admin = new Client({ connectionString: primary.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE keel');
  await admin.end();
  await migrate({ connectionString: url });
  const lockUrl = await ensureLockDatabase(url);
  expect(lockUrl).toBe(
    `postgres://postgres@${pair.hostList}/keel_lock?target_session_attrs=read-write&connect_timeout=2`,
  );

  const selector = new HostSelector(url, { name: 'store' });
  const c1 = await selector.connect();
  expect(await scalar(c1, 'SELECT inet_server_port()')).toBe(primary.port);
  await c1.query('CREATE TABLE receipts (n int)');
  await c1.query('INSERT INTO receipts SELECT generate_series(1, 1000)'); // synchronous commit: on the standby too
  c1.on('error', () => {});

  const locker = new RowLocker({
    connectionString: lockUrl,
    cluster: 'c',
    node: 'n1',
    leaseMs: 1000,
    keepAliveMs: 200,
  });
  await locker.acquire(new AbortController().signal);
  const lost = new Promise<string>((resolve) => locker.onLost(resolve));

  await pair.killPrimary();
  await pair.promoteStandby();
  expect(await lost).toMatch(/lock session|keep-alive/);

  const c2 = await selector.connect();
  expect(await scalar(c2, 'SELECT inet_server_port()')).toBe(standby.port);
  expect(selector.status()).toMatchObject({
    current: `127.0.0.1:${standby.port}`,
    rejected: { [`127.0.0.1:${primary.port}`]: expect.any(String) },
  });
  expect(Number(await scalar(c2, 'SELECT count(*) FROM receipts'))).toBe(1000);
  await c2.end();

  // The lock row was replicated: the lock is taken again on the new primary.
  await locker.close();
  const again = new RowLocker({ connectionString: lockUrl, cluster: 'c', node: 'n2' });
  await again.acquire(new AbortController().signal);
  expect(again.hostSelection().current).toBe(`127.0.0.1:${standby.port}`);
  await again.close();
});
