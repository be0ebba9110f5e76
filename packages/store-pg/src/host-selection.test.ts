import { FaultProxy, freePort, useTestDatabase } from '@keel/testkit';
import { Client, Pool } from 'pg';
import { HostSelector } from './host-selection';
import { PgStore } from './pg-store';
import { parsePgUrl } from './pg-url';
import { RowLocker } from './row-locker';

/** Host selection on a real Postgres: dead hosts (a closed port, a cut proxy) and read-only ones. */
const db = useTestDatabase();

function target(url: string): { port: number; auth: string; database: string } {
  const u = parsePgUrl(url);
  return { port: (u.hosts[0] as { port: number }).port, auth: u.userinfo, database: u.database };
}

/** `postgres://user@h1,h2/db?query` on the test server's credentials. */
function multiUrl(hosts: string[], query = '', database = target(db.url).database): string {
  const { auth } = target(db.url);
  return `postgres://${auth ? `${auth}@` : ''}${hosts.join(',')}/${database}${query}`;
}

async function sql(url: string, text: string): Promise<void> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

describe('HostSelector', () => {
  const proxies: FaultProxy[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((c) => c().catch(() => {})));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  async function proxy(): Promise<FaultProxy> {
    const p = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target(db.url).port });
    proxies.push(p);
    return p;
  }

  it('connects to the first read-write host in order, saying why it passed the others over', async () => {
    const dead = await freePort();
    const live = `127.0.0.1:${target(db.url).port}`;
    const warned: object[] = [];
    const selector = new HostSelector(multiUrl([`127.0.0.1:${dead}`, live]), {
      name: 'store',
      defaultTarget: 'read-write',
      logger: { info() {}, warn: (o) => warned.push(o) },
    });
    expect(selector.target).toBe('read-write');
    const c = await selector.connect();
    closers.push(() => c.end());
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    expect(selector.status()).toEqual({
      name: 'store',
      target: 'read-write',
      hosts: [`127.0.0.1:${dead}`, live],
      current: live,
      rejected: { [`127.0.0.1:${dead}`]: expect.stringContaining('ECONNREFUSED') },
    });
    expect(warned).toEqual([expect.objectContaining({ host: `127.0.0.1:${dead}`, pool: 'store' })]);
  });

  it('refuses a list whose every host is read-only: "no read-write host among …" with each reason', async () => {
    const p = await proxy();
    const { port } = target(db.url);
    await sql(db.adminUrl, `ALTER DATABASE ${db.name} SET default_transaction_read_only = on`);
    try {
      const selector = new HostSelector(
        multiUrl([p.address, `127.0.0.1:${port}`], '?target_session_attrs=read-write'),
        { name: 'store' },
      );
      const err = await selector.connect().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
      expect((err as Error).message).toBe(
        `no read-write host among ${p.address}, 127.0.0.1:${port} (${p.address}: read-only (transaction_read_only=on); 127.0.0.1:${port}: read-only (transaction_read_only=on))`,
      );
      // read-only / standby / prefer-standby / any targets: a read-only primary is read-only, not a standby.
      const ro = new HostSelector(multiUrl([p.address], '?target_session_attrs=read-only'), {
        name: 'admin',
      });
      closers.push(async () => (await ro.connect()).end());
      const sb = new HostSelector(multiUrl([p.address], '?target_session_attrs=standby'), { name: 'admin' });
      await expect(sb.connect()).rejects.toThrow(
        `no standby host among ${p.address} (${p.address}: read-only`,
      );
      const prefer = new HostSelector(multiUrl([p.address], '?target_session_attrs=prefer-standby'), {
        name: 'admin',
      });
      const c = await prefer.connect();
      closers.push(() => c.end());
      expect(prefer.status().current).toBe(p.address);
    } finally {
      await sql(db.adminUrl, `ALTER DATABASE ${db.name} RESET default_transaction_read_only`);
    }
  });

  it('every host down: a retryable STORE_UNAVAILABLE naming each host and its reason', async () => {
    const a = await freePort();
    const p = await proxy();
    p.setMode('cut');
    const selector = new HostSelector(multiUrl([`127.0.0.1:${a}`, p.address], '?connect_timeout=2'), {
      name: 'lock',
      defaultTarget: 'read-write',
    });
    const err = (await selector.connect().catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('STORE_UNAVAILABLE');
    expect(err.message).toMatch(
      new RegExp(
        `^no read-write host among 127.0.0.1:${a}, ${p.address} \\(127.0.0.1:${a}: .*ECONNREFUSED.*; ${p.address}: .+\\)$`,
      ),
    );
  });

  it('a pool re-picks on every new connection: when its host dies, the next connection goes to the next host', async () => {
    const p = await proxy();
    const { port } = target(db.url);
    const selector = new HostSelector(multiUrl([p.address, `127.0.0.1:${port}`]), {
      name: 'store',
      defaultTarget: 'read-write',
    });
    const pool = new Pool(selector.poolOptions({ max: 2, connectionTimeoutMillis: 2000 }));
    pool.on('error', () => {});
    closers.push(() => pool.end());
    const port1 = async () => (await pool.query<{ p: number }>('SELECT inet_server_port() AS p')).rows[0]?.p;
    expect(await port1()).toBe(port);
    expect(selector.status().current).toBe(p.address);
    expect(p.stats.accepted).toBeGreaterThan(0);

    const passedOver = new Promise<void>((resolve) => {
      const reject = selector.reject.bind(selector);
      selector.reject = (h, reason) => {
        reject(h, reason);
        resolve();
      };
    });
    p.setMode('cut'); // the primary "dies": its idle sessions are reset, new connections refused
    await passedOver; // the broken idle session passes its host over
    expect(selector.status()).toMatchObject({
      current: null,
      rejected: { [p.address]: expect.stringMatching(/^session failed: /) },
    });
    expect(await port1()).toBe(port); // the next connection probes the list and lands on host 2
    expect(selector.status().current).toBe(`127.0.0.1:${port}`);
  });

  it('PgStore and RowLocker work through a host list whose first host is down, and say which host they use', async () => {
    const dead = await freePort();
    const { port } = target(db.url);
    const live = `127.0.0.1:${port}`;
    const store = new PgStore({ connectionString: multiUrl([`127.0.0.1:${dead}`, live]), cluster: 'hs' });
    closers.push(() => store.close());
    await store.open();
    expect(store.hostSelection()).toMatchObject({ name: 'store', target: 'read-write', current: live });
    const locker = new RowLocker({
      connectionString: multiUrl([`127.0.0.1:${dead}`, live], '', db.lockName),
      cluster: 'hs',
      node: 'n1',
    });
    closers.push(() => locker.close());
    await locker.acquire(new AbortController().signal);
    expect(locker.held).toBe(true);
    expect(locker.hostSelection()).toMatchObject({ name: 'lock', current: live });
  });
});
