/**
 * Message groups through a master takeover (issue #21.2, "one failover per feature that keeps
 * state"): a master and a slave (real processes over real Postgres), @keel/client failover
 * consumers and producer, groups in flight when the master is SIGKILLed.
 *
 * Group assignments are not stored: the new master rebuilds them as consumers come back
 * (dispatch/message-groups.ts). What must hold: no group is delivered out of order, nothing is lost
 * or delivered twice, and a group is on one consumer at a time (it changes owner at most once, at
 * the takeover).
 */
import { stopAll, useTestDatabase } from '@keel/testkit';
import { crashedNodes, queueDepth, startCluster, waitForNewMaster } from './helpers/cluster';
import { failoverUrl, openClient } from './helpers/traffic';

jest.setTimeout(150_000);

const db = useTestDatabase();
const CLUSTER = 'grpfo';
const QUEUE = 'grpfo.orders';
const GROUPS = 6;
const PER_GROUP = 250;
const TOTAL = GROUPS * PER_GROUP;

afterAll(async () => {
  await stopAll();
});

interface Delivery {
  consumer: string;
  group: string;
  seq: number;
  first: boolean;
}

test('SIGKILL of the master with groups in flight: every group in order, none lost or doubled', async () => {
  const nodes = await startCluster(db.url, CLUSTER, 2);
  const master = nodes[0]!;
  const url = failoverUrl(nodes.map((n) => n.port));

  const deliveries: Delivery[] = [];
  let onDelivery = (): void => {};
  const consumerClients = [];
  for (const tag of ['c1', 'c2']) {
    const client = await openClient(url, `grpfo-${tag}`);
    consumerClients.push(client);
    const session = await client.conn.createSession({ ackMode: 'individual' });
    const consumer = await session.createConsumer(`queue://${QUEUE}`, { prefetch: 20 });
    consumer.on('error', () => {});
    consumer.onMessage((m) => {
      deliveries.push({
        consumer: tag,
        group: String(m.properties.JMSXGroupID),
        seq: Number(m.properties.JMSXGroupSeq),
        first: m.properties.JMSXGroupFirstForConsumer === true,
      });
      m.ack().catch(() => {});
      onDelivery();
    });
  }

  const producerClient = await openClient(url, 'grpfo-producer');
  const session = await producerClient.conn.createSession();
  const producer = session.createProducer(`queue://${QUEUE}`, { persistent: true });
  let receipted = 0;
  let failedSends = 0;
  let killedAt = 0;
  const newMaster = waitForNewMaster(nodes, master, 60_000);
  const deadline = Date.now() + 90_000;
  // One lane per group, each send awaited: a group's messages are sent (and stored) in order.
  await Promise.all(
    Array.from({ length: GROUPS }, async (_, g) => {
      for (let seq = 1; seq <= PER_GROUP && Date.now() < deadline; seq++) {
        for (;;) {
          try {
            await producer.send(`g${g}:${seq}`, { properties: { JMSXGroupID: `g${g}`, JMSXGroupSeq: seq } });
            break;
          } catch {
            failedSends += 1;
            if (Date.now() > deadline) throw new Error(`g${g}:${seq} could not be sent`);
          }
        }
        receipted += 1;
        if (killedAt === 0 && receipted >= TOTAL / 2) {
          killedAt = Date.now();
          master.kill('SIGKILL');
        }
      }
    }),
  );
  expect(killedAt).toBeGreaterThan(0);
  const { node: taker } = await newMaster;

  const distinct = () => new Set(deliveries.map((d) => `${d.group}:${d.seq}`)).size;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${distinct()} of ${TOTAL} delivered`)), 60_000);
    onDelivery = () => {
      if (distinct() >= TOTAL) {
        clearTimeout(timer);
        resolve();
      }
    };
    onDelivery();
  });
  // The queue drains once every ack is stored: nothing is left to come again.
  const drainBy = Date.now() + 20_000;
  let depth = await queueDepth(db.url, CLUSTER, QUEUE);
  while (depth > 0 && Date.now() < drainBy) {
    await new Promise((r) => setTimeout(r, 100));
    depth = await queueDepth(db.url, CLUSTER, QUEUE);
  }
  for (const c of [...consumerClients, producerClient]) await c.conn.close();

  let lost = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let ownerChanges = 0;
  let mostChanges = 0;
  let unflaggedFirsts = 0;
  for (let g = 0; g < GROUPS; g++) {
    const mine = deliveries.filter((d) => d.group === `g${g}`);
    const seen = new Set<number>();
    let last = 0;
    const firstTo = new Set<string>();
    let changes = 0;
    for (let i = 0; i < mine.length; i++) {
      const d = mine[i]!;
      if (seen.has(d.seq)) duplicated += 1;
      else {
        // The next new message of a group is always the one after the last: no gap, no overtaking.
        if (d.seq !== last + 1) outOfOrder += 1;
        seen.add(d.seq);
        last = d.seq;
      }
      if (i > 0 && mine[i - 1]!.consumer !== d.consumer) changes += 1;
      if (!firstTo.has(d.consumer)) {
        firstTo.add(d.consumer);
        if (!d.first) unflaggedFirsts += 1;
      }
    }
    lost += PER_GROUP - seen.size;
    ownerChanges += changes;
    mostChanges = Math.max(mostChanges, changes);
  }
  console.log(
    `[e2e message-groups-failover] sent=${TOTAL} receipted=${receipted} failedSends=${failedSends} ` +
      `delivered=${deliveries.length} distinct=${distinct()} lost=${lost} duplicated=${duplicated} ` +
      `outOfOrder=${outOfOrder} ownerChanges=${ownerChanges} (groups=${GROUPS}) new master=${taker.name} ` +
      `by consumer=${JSON.stringify(Object.fromEntries(['c1', 'c2'].map((c) => [c, deliveries.filter((d) => d.consumer === c).length])))}`,
  );
  expect(receipted).toBe(TOTAL);
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
  expect(outOfOrder).toBe(0);
  expect(unflaggedFirsts).toBe(0);
  // Before the takeover each group has one owner, after it one owner: at most one change a group.
  expect(mostChanges).toBeLessThanOrEqual(1);
  expect(depth).toBe(0);
  expect(crashedNodes(nodes)).toEqual([]);
});
