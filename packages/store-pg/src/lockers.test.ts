import type { Locker } from '@keel/core';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { LeaseLocker } from './lease-locker';
import { RowLocker } from './row-locker';

/** N nodes racing for the master lock on a real Postgres (pg-boss multiMasterTest style). */
const db = useTestDatabase();

type Make = (node: string, cluster: string) => Locker;
const kinds: [string, Make][] = [
  [
    'RowLocker',
    (node, cluster) =>
      new RowLocker({
        connectionString: db.lockUrl,
        cluster,
        node,
        keepAliveMs: 100,
        leaseMs: 600,
        waitingPollMs: 100,
      }),
  ],
  [
    'LeaseLocker',
    (node, cluster) =>
      new LeaseLocker({
        connectionString: db.lockUrl,
        cluster,
        node,
        keepAliveMs: 100,
        leaseMs: 600,
        waitingPollMs: 100,
      }),
  ],
];

async function sql(text: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
  const c = new Client({ connectionString: db.lockUrl });
  await c.connect();
  try {
    return (await c.query(text, values)).rows;
  } finally {
    await c.end();
  }
}

describe.each(kinds)('%s', (kind, make) => {
  const lockers: Locker[] = [];
  afterEach(async () => {
    await Promise.all(lockers.splice(0).map((l) => l.close()));
  });

  it('lets exactly one of several racing nodes hold the lock, and passes it on when released', async () => {
    const cluster = `race-${kind}`;
    const nodes = ['a', 'b', 'c', 'd'].map((n) => make(n, cluster));
    lockers.push(...nodes);
    const abort = new AbortController();
    const winners: number[] = [];
    const attempts = nodes.map((l, i) => l.acquire(abort.signal).then(() => winners.push(i)));
    const first = await Promise.race(attempts.map((p, i) => p.then(() => i)));
    await new Promise((r) => setTimeout(r, 400)); // several waiting polls: nobody else may win
    expect(winners).toEqual([first]);
    expect(nodes.filter((l) => l.held)).toHaveLength(1);
    await nodes[first].release();
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (winners.length === 2) {
          clearInterval(t);
          resolve();
        }
      }, 20);
    });
    expect(nodes.filter((l) => l.held)).toHaveLength(1);
    expect(winners[1]).not.toBe(first);
    abort.abort(new Error('test over'));
    await Promise.allSettled(attempts);
  });

  it('reports the loss when the lock holder loses its database session', async () => {
    const cluster = `lost-${kind}`;
    const holder = make('holder', cluster);
    const waiter = make('waiter', cluster);
    lockers.push(holder, waiter);
    await holder.acquire(new AbortController().signal);
    const lost = new Promise<string>((resolve) => holder.onLost(resolve));
    const waiting = waiter.acquire(new AbortController().signal);
    if (kind === 'RowLocker') {
      await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [
        `keel-lock:${cluster}:holder`,
      ]);
    } else {
      // A lease taken over behind the holder's back: its next renewal finds the row gone.
      await sql(`UPDATE activemq_lock SET broker_name = 'intruder', time = 0 WHERE cluster = $1`, [cluster]);
    }
    expect(await lost).toMatch(/lost|failed|ended|error|taken|terminat/i);
    expect(holder.held).toBe(false);
    await waiting;
    expect(waiter.held).toBe(true);
  });
});

describe('the lease as the lock records it (console and /api/broker)', () => {
  it('LeaseLocker: any node reads the holder, its last renewal and the expiry; the row locker has none', async () => {
    const cluster = 'lease-view';
    const [holder, waiter] = ['holder', 'waiter'].map((n) => kinds[1]![1](n, cluster)) as [
      LeaseLocker,
      LeaseLocker,
    ];
    const row = kinds[0]![1]('row', 'lease-view-row');
    try {
      expect(await waiter.lease()).toBeNull();
      await holder.acquire(new AbortController().signal);
      const first = await waiter.lease();
      expect(first).toMatchObject({ holder: 'holder', durationMs: 600 });
      expect(Date.parse(first!.expiresAt) - Date.parse(first!.renewedAt)).toBe(600);
      // Renewed every 100 ms: a later read sees a later renewal.
      await new Promise((r) => setTimeout(r, 350));
      const later = await waiter.lease();
      expect(Date.parse(later!.renewedAt)).toBeGreaterThan(Date.parse(first!.renewedAt));
      expect(row.lease).toBeUndefined();
    } finally {
      await Promise.all([holder.close(), waiter.close(), row.close()]);
    }
  });
});
