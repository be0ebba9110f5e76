/**
 * Virtual topic fan-out through a takeover (issue #21.4): a master and a slave (real processes),
 * two consumer queues of topic VirtualTopic.vt.orders, a failover producer publishing 2,000
 * persistent messages to the topic, the master SIGKILLed midway. The fan-out to the consumer
 * queues is one store commit with the publish, so each queue must receive every receipted message
 * once: counted sent, receipted, received, lost and duplicated per queue.
 */
import { stopAll, useTestDatabase } from '@keel/testkit';
import { crashedNodes, startCluster, waitForNewMaster } from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import { failoverUrl, openClient, runProducer } from './helpers/traffic';

jest.setTimeout(120_000);

const db = useTestDatabase();
const CLUSTER = 'vtfo';
const TOPIC = 'VirtualTopic.vt.orders';
const QUEUES = ['Consumer.A.VirtualTopic.vt.orders', 'Consumer.B.VirtualTopic.vt.orders'];
const TOTAL = 2_000;

afterAll(async () => {
  await stopAll();
});

test('SIGKILL of the master while publishing to a virtual topic: each consumer queue gets every receipted message once', async () => {
  const nodes = await startCluster(db.url, CLUSTER, 2);
  const master = nodes[0]!;
  const url = failoverUrl(nodes.map((n) => n.port));
  const sent = new Ledger();
  // What each consumer queue delivered (body, redelivered flag), replayed into its own ledger below.
  const received: { body: Buffer; redelivered: boolean; id: string }[][] = QUEUES.map(() => []);
  const consumerClients = [];
  for (const [i, q] of QUEUES.entries()) {
    const c = await openClient(url, `vt-consumer-${i}`);
    consumerClients.push(c);
    const session = await c.conn.createSession({ ackMode: 'individual' });
    const consumer = await session.createConsumer(`queue://${q}`, { prefetch: 200 });
    consumer.on('error', () => {});
    consumer.onMessage((m) => {
      received[i]!.push({ body: m.body, redelivered: m.redelivered, id: m.messageId });
      m.ack().catch(() => {});
    });
  }
  const producer = await openClient(url, 'vt-producer');
  let killedAt = 0;
  const newMaster = waitForNewMaster(nodes, master, 60_000);
  const result = await runProducer({
    session: await producer.conn.createSession(),
    destination: `topic://${TOPIC}`,
    name: 'p1',
    count: TOTAL,
    ledger: sent,
    window: 20,
    deadline: Date.now() + 90_000,
    onReceipt: () => {
      if (killedAt === 0 && sent.receipted.size >= TOTAL / 2) {
        killedAt = Date.now();
        master.kill('SIGKILL');
      }
    },
  });
  expect(killedAt).toBeGreaterThan(0);
  await newMaster;
  const deadline = Date.now() + 60_000;
  while (received.some((r) => new Set(r.map((x) => x.body.toString('latin1'))).size < sent.receipted.size)) {
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const c of [...consumerClients, producer]) await c.conn.close();

  const s = sent.summary();
  for (const [i, q] of QUEUES.entries()) {
    const ledger = new Ledger();
    for (const k of sent.attempted) ledger.attempted.add(k);
    for (const k of sent.receipted) ledger.receipted.add(k);
    for (const m of received[i]!) ledger.deliver(m.body, m.redelivered, q, m.id);
    const r = ledger.summary();
    console.log(
      `[e2e virtual-topic-failover] ${q}: sent=${s.attempted} receipted=${s.receipted} failed=${s.failed} ` +
        `received=${r.delivered} distinct=${r.distinctDelivered} lost=${r.lost} duplicated=${r.duplicates} ` +
        `redelivered(flag)=${r.redelivered} producerErrors=${JSON.stringify(result.errors)}`,
    );
    expect(r.lost).toBe(0);
    expect(r.duplicates).toBe(0);
    expect(r.corrupt).toBe(0);
    expect(r.unknown).toBe(0);
  }
  expect(s.receipted).toBe(TOTAL);
  expect(s.failed).toBe(0);
  expect(crashedNodes(nodes)).toEqual([]);
});
