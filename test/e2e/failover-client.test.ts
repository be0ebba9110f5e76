/**
 * The failover client through a real takeover: three nodes, producers and consumers on the
 * `failover:(…)` URL, 10,000 persistent messages, the master SIGKILLed midway.
 *
 * Promise: the application sees a pause, not an error: every send resolves, and every message
 * reaches the application exactly once (the broker's duplicate detection keeps resends single, the
 * client's audit suppresses redeliveries of acknowledged messages).
 */
import { stopAll, useTestDatabase } from '@keel/testkit';
import { crashedNodes, logTime, queueDepth, startCluster, waitForNewMaster } from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import {
  type ConnectedClient,
  failoverUrl,
  openClient,
  type RunningConsumer,
  runProducer,
  startConsumer,
} from './helpers/traffic';

jest.setTimeout(120_000);

const db = useTestDatabase();
const CLUSTER = 'fo';
const QUEUE = 'fo.orders';
const PRODUCERS = 4;
const CONSUMERS = 3;
const TOTAL = 10_000;

afterAll(async () => {
  await stopAll();
});

test('SIGKILL of the master: 10,000 messages, each delivered exactly once, the client sees a pause', async () => {
  // The recovery hold covers the consumers' reconnect and ack replay. The default 1 s did not always
  // cover it beside stress-ng (16 duplicates in 1 of 4 runs: two consumers replayed after the hold);
  // operations.md says to raise lock.recoveryHoldMs on hosts that may be that busy.
  const nodes = await startCluster(db.url, CLUSTER, 3, { env: { KEEL_RECOVERY_HOLD_MS: '3000' } });
  const master = nodes[0]!;
  const url = failoverUrl(nodes.map((n) => n.port));
  const ledger = new Ledger();

  const consumerClients: ConnectedClient[] = [];
  const consumers: RunningConsumer[] = [];
  for (let i = 0; i < CONSUMERS; i++) {
    const c = await openClient(url, `fo-consumer-${i + 1}`);
    consumerClients.push(c);
    consumers.push(await startConsumer(c.conn, `queue://${QUEUE}`, ledger, 200, `c${i + 1}`));
  }
  const producerClients: ConnectedClient[] = [];
  for (let i = 0; i < PRODUCERS; i++) producerClients.push(await openClient(url, `fo-producer-${i + 1}`));

  let killedAt = 0;
  const deadline = Date.now() + 90_000;
  const newMaster = waitForNewMaster(nodes, master, 60_000);
  const onReceipt = () => {
    if (killedAt === 0 && ledger.receipted.size >= TOTAL / 2) {
      killedAt = Date.now();
      master.kill('SIGKILL');
    }
  };
  const started = Date.now();
  const results = await Promise.all(
    producerClients.map(async (c, i) =>
      runProducer({
        session: await c.conn.createSession(),
        destination: `queue://${QUEUE}`,
        name: `p${i + 1}`,
        count: TOTAL / PRODUCERS,
        ledger,
        window: 20,
        deadline,
        onReceipt,
      }),
    ),
  );
  const sendMs = Date.now() - started;
  expect(killedAt).toBeGreaterThan(0);
  const { node: taker, entry } = await newMaster;
  const takeoverMs = logTime(entry) - killedAt;

  await ledger.waitFor(
    () => ledger.delivered.size >= ledger.receipted.size,
    60_000,
    'every receipted message',
  );
  // Every ack is stored once the queue is empty: nothing can be redelivered any more.
  const drainDeadline = Date.now() + 20_000;
  let depth = await queueDepth(db.url, CLUSTER, QUEUE);
  while (depth > 0 && Date.now() < drainDeadline) {
    await new Promise((r) => setTimeout(r, 100));
    depth = await queueDepth(db.url, CLUSTER, QUEUE);
  }
  for (const c of consumers) await c.close();
  for (const c of [...consumerClients, ...producerClients]) await c.conn.close();

  const s = ledger.summary();
  const pauses = [...producerClients, ...consumerClients].flatMap((c) => c.meter.pausesMs);
  const failedCodes: Record<string, number> = {};
  for (const r of results)
    for (const [k, v] of Object.entries(r.errors)) failedCodes[k] = (failedCodes[k] ?? 0) + v;
  console.log(
    `[e2e failover-client] sent=${s.attempted} receipted=${s.receipted} failed=${s.failed} delivered=${s.delivered} ` +
      `distinct=${s.distinctDelivered} lost=${s.lost} duplicates=${s.duplicates} redelivered(flag)=${s.redelivered} ` +
      `kill->new master(${taker.name}) log=${takeoverMs} ms client pause max=${Math.max(0, ...pauses)} ms ` +
      `min=${pauses.length ? Math.min(...pauses) : 0} ms (${pauses.length} connections interrupted) send phase=${sendMs} ms ` +
      `ackErrors=${consumers.reduce((a, c) => a + c.ackErrors, 0)} errors=${JSON.stringify(failedCodes)}`,
  );

  if (ledger.duplicateDetails.length > 0) console.log(ledger.duplicateDetails.slice(0, 10).join('\n'));
  expect(s.attempted).toBe(TOTAL);
  expect(s.failed).toBe(0);
  expect(s.receipted).toBe(TOTAL);
  expect(s.lost).toBe(0);
  expect(s.duplicates).toBe(0);
  expect(s.corrupt).toBe(0);
  expect(s.unknown).toBe(0);
  expect(s.distinctDelivered).toBe(TOTAL);
  expect(depth).toBe(0);
  expect(crashedNodes(nodes)).toEqual([]);
  // Every client connection went through the failover and came back.
  for (const c of [...producerClients, ...consumerClients]) {
    expect(c.meter.interruptions).toBeGreaterThanOrEqual(1);
    expect(c.meter.pausesMs.length).toBe(c.meter.interruptions);
  }
});
