import { randomBytes } from 'node:crypto';
import { type Connection, connect, type ReceivedMessage } from '@keel/client';
import { Broker } from '@keel/core';
import { KeelError } from '@keel/protocol';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { NativeListener } from './native-listener';

/**
 * Issue #17.3: with concurrent store and dispatch a consumer may get a message before its insert
 * commits. When the insert then fails (here: the store's Postgres sessions terminated with
 * pg_terminate_backend, again and again, while producers send and a consumer is attached), the
 * send must not be answered "failed" — docs/errors.md promises a failed request stored and so
 * delivered nothing. It is answered IN_DOUBT, which @keel/client's failover producer resolves by
 * resending (same producer id and sequence, `resent`): nothing receipted is lost. A send refused
 * STORE_UNAVAILABLE (nothing stored) the failover producer resends as well: none fails.
 *
 * Real broker on real Postgres, real TCP, the real client. Every message is counted: sent,
 * receipted, failed (by code), received.
 */
const db = useTestDatabase();

jest.setTimeout(60_000);

interface Counts {
  sent: number;
  receipted: Set<string>;
  failed: Map<string, string>;
  received: Set<string>;
  duplicates: number;
}

async function run(failover: boolean): Promise<Counts & { inDoubtResends: number; terminated: number }> {
  const cluster = `doubt-${randomBytes(3).toString('hex')}`;
  const applicationName = `keel-${cluster}`;
  const store = new PgStore({ connectionString: db.url, cluster, poolSize: 2, applicationName });
  await store.open();
  await store.takeOver('node-1', 'test');
  const broker = new Broker({ nodeName: 'node-1', store, redelivery: { initialRedeliveryDelay: 0 } });
  broker.on('store:error', () => {});
  await broker.start();
  const listener = new NativeListener({
    broker,
    host: '127.0.0.1',
    port: 0,
    heartbeatMs: 0,
    describe: () => ({
      broker: { name: 'node-1', cluster, role: 'master', epoch: 1, version: '0.1.0' },
      brokers: [],
    }),
  });
  const { port } = await listener.start();
  const killer = new Client({ connectionString: db.url });
  killer.on('error', () => {});
  await killer.connect();
  let inDoubtResends = 0;
  const logger = {
    debug: () => {},
    info: () => {},
    warn: (_o: object, m?: string) => {
      if (m?.startsWith('send in doubt')) inDoubtResends += 1;
    },
    error: () => {},
  };
  const url = failover
    ? `failover:(tcp://127.0.0.1:${port})?initialReconnectDelay=10`
    : `tcp://127.0.0.1:${port}`;
  const conns: Connection[] = [];
  const counts: Counts = {
    sent: 0,
    receipted: new Set(),
    failed: new Map(),
    received: new Set(),
    duplicates: 0,
  };
  let terminated = 0;
  try {
    const consumerConn = await connect(url, { heartbeatMs: 0, logger });
    conns.push(consumerConn);
    const consumerSession = await consumerConn.createSession({ ackMode: 'individual' });
    const consumer = await consumerSession.createConsumer('queue://doubt', { prefetch: 50 });
    consumer.onMessage((m: ReceivedMessage) => {
      const key = m.text();
      if (counts.received.has(key)) counts.duplicates += 1;
      counts.received.add(key);
      // Acknowledged a little later than at once, so that inserts are written (no hold saves them).
      setTimeout(() => void m.ack().catch(() => {}), 3);
    });

    // Terminate the store's sessions every few ms while the producers run.
    let stop = false;
    const faults = (async () => {
      while (!stop) {
        const r = await killer.query(
          'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1',
          [applicationName],
        );
        terminated += r.rows[0].n;
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();

    const producers = await Promise.all(
      [0, 1, 2, 3].map(async (p) => {
        const c = await connect(url, { heartbeatMs: 0, logger });
        conns.push(c);
        const session = await c.createSession();
        return { p, producer: session.createProducer('queue://doubt') };
      }),
    );
    const deadline = Date.now() + 3000;
    const send = (producer: (typeof producers)[number]['producer'], body: string): Promise<void> => {
      counts.sent += 1;
      return producer.send(body).then(
        () => {
          counts.receipted.add(body);
        },
        (err: unknown) => {
          counts.failed.set(body, KeelError.isInstance(err) ? err.code : String(err));
        },
      );
    };
    // Each producer keeps 8 sends in flight, for 3 s.
    await Promise.all(
      producers.map(async ({ p, producer }) => {
        for (let i = 0; Date.now() < deadline; i += 8) {
          await Promise.all(Array.from({ length: 8 }, (_, k) => send(producer, `${p}/${i + k}`)));
        }
      }),
    );
    stop = true;
    await faults;
    // Everything receipted and not consumed yet is stored: it arrives once the faults stopped.
    const settleBy = Date.now() + 20_000;
    while ([...counts.receipted].some((b) => !counts.received.has(b)) && Date.now() < settleBy) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { ...counts, inDoubtResends, terminated };
  } finally {
    for (const c of conns) await c.close().catch(() => {});
    await listener.stop();
    await broker.stop();
    await store.close();
    await killer.end();
  }
}

function report(name: string, r: Awaited<ReturnType<typeof run>>): string {
  const codes: Record<string, number> = {};
  for (const code of r.failed.values()) codes[code] = (codes[code] ?? 0) + 1;
  return `${name}: sent ${r.sent}, receipted ${r.receipted.size}, failed ${r.failed.size} ${JSON.stringify(codes)}, received ${r.received.size} (duplicates ${r.duplicates}), in-doubt resends ${r.inDoubtResends}, sessions terminated ${r.terminated}`;
}

test('plain tcp:// client: no message is both received and answered as failed (IN_DOUBT instead)', async () => {
  const r = await run(false);
  console.log(report('tcp', r));
  expect(r.terminated).toBeGreaterThan(0);
  const receivedAndFailed = [...r.failed].filter(([b, code]) => r.received.has(b) && code !== 'IN_DOUBT');
  expect(receivedAndFailed).toEqual([]);
  // Every send is accounted for, and nothing receipted is lost.
  expect(r.receipted.size + r.failed.size).toBe(r.sent);
  expect([...r.receipted].filter((b) => !r.received.has(b))).toEqual([]);
});

test('failover client: sends in doubt or refused STORE_UNAVAILABLE are resent; every send receipted, nothing lost', async () => {
  const r = await run(true);
  console.log(report('failover', r));
  expect(r.terminated).toBeGreaterThan(0);
  // The failover producer rides through the store's failures: no send fails (it did: some were
  // answered STORE_UNAVAILABLE and given to the application), and none is taken for a duplicate.
  expect(Object.fromEntries(r.failed)).toEqual({});
  expect(r.receipted.size).toBe(r.sent);
  expect([...r.receipted].filter((b) => !r.received.has(b))).toEqual([]);
});
