/**
 * Issue #20.2: the store's Postgres primary dies and its synchronous standby is promoted. Two Keel
 * nodes on a multi-host URL (`h1,h2/keel?target_session_attrs=read-write`), failover clients with
 * persistent load; the primary's postmaster is SIGKILLed midway and the standby promoted with
 * `pg_ctl promote`. The nodes find the new primary through the host list, a master takes the
 * replicated lock there with the epoch carried on, and with synchronous_standby_names set no
 * receipted message is lost or duplicated.
 */
import { type PostgresPair, startPostgresPair, stopAll } from '@keel/testkit';
import { Client } from 'pg';
import { crashedNodes, queueDepth, startCluster } from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import {
  type ConnectedClient,
  drain,
  failoverUrl,
  openClient,
  type RunningConsumer,
  runProducer,
  startConsumer,
} from './helpers/traffic';

jest.setTimeout(100_000);

const CLUSTER = 'pgfo';
const QUEUE = 'pgfo.orders';
const TOTAL = 2_000;
let pair: PostgresPair | undefined;

afterAll(async () => {
  await stopAll();
  await pair?.stop();
});

test('primary SIGKILLed, synchronous standby promoted: nodes follow the host list, 0 lost, 0 duplicated', async () => {
  pair = await startPostgresPair({ synchronous: true });
  const admin = new Client({ connectionString: pair.primary.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE keel');
  await admin.end();
  const db = `postgres://postgres@${pair.hostList}/keel?target_session_attrs=read-write&connect_timeout=2`;
  const nodes = await startCluster(db, CLUSTER, 2);
  const url = failoverUrl(nodes.map((n) => n.port));
  const ledger = new Ledger();

  const consumerClient = await openClient(url, 'pgfo-consumer');
  const consumers: RunningConsumer[] = [
    await startConsumer(consumerClient.conn, `queue://${QUEUE}`, ledger, 200, 'c1'),
  ];
  const producerClients: ConnectedClient[] = [
    await openClient(url, 'pgfo-p1'),
    await openClient(url, 'pgfo-p2'),
  ];

  let killedAt = 0;
  let promotedAt = 0;
  let promoted: Promise<void> = Promise.resolve();
  const onReceipt = () => {
    if (killedAt === 0 && ledger.receipted.size >= TOTAL / 2 && pair) {
      killedAt = Date.now();
      const p = pair;
      promoted = p.killPrimary().then(async () => {
        await p.promoteStandby();
        promotedAt = Date.now();
      });
    }
  };
  const marks = nodes.map((n) => n.mark());
  const started = Date.now();
  const results = await Promise.all(
    producerClients.map(async (c, i) =>
      runProducer({
        session: await c.conn.createSession(),
        destination: `queue://${QUEUE}`,
        name: `p${i + 1}`,
        count: TOTAL / 2,
        ledger,
        window: 10,
        deadline: Date.now() + 90_000,
        onReceipt,
      }),
    ),
  );
  await promoted;
  expect(killedAt).toBeGreaterThan(0);
  const newPrimary = `postgres://postgres@127.0.0.1:${pair.primary.port}/keel`;
  const depth = await drain(ledger, () => queueDepth(newPrimary, CLUSTER, QUEUE), 60_000);
  for (const c of consumers) await c.close();
  for (const c of [consumerClient, ...producerClients]) await c.conn.close();

  // A master took the lock again on the new primary, the epoch carried on from the old one.
  const takeovers = nodes.flatMap((n, i) =>
    n.logs.slice(marks[i]).filter((e) => e.msg === 'role changed' && e.role === 'master'),
  );
  const s = ledger.summary();
  const pauses = [...producerClients, consumerClient].flatMap((c) => c.meter.pausesMs);
  const errors: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  console.log(
    `[e2e pg-failover sync] sent=${s.attempted} receipted=${s.receipted} failed=${s.failed} delivered=${s.delivered} ` +
      `lost=${s.lost} duplicates=${s.duplicates} kill->promoted=${promotedAt - killedAt} ms ` +
      `client pause max=${Math.max(0, ...pauses)} ms send phase=${Date.now() - started} ms ` +
      `takeovers=${takeovers.map((e) => `epoch ${String(e.epoch)}`).join(',')} errors=${JSON.stringify(errors)}`,
  );
  expect(s.receipted).toBe(s.attempted - s.failed);
  expect(s.lost).toBe(0);
  expect(s.duplicates).toBe(0);
  expect(s.corrupt).toBe(0);
  expect(depth).toBe(0);
  expect(crashedNodes(nodes)).toEqual([]);
  expect(takeovers.length).toBeGreaterThanOrEqual(1);
});
