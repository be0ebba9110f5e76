/**
 * Selector dispatch does not rescan the waiting window per delivery (issue #21.1): entries a selector
 * consumer skipped are remembered (MessageQueue.dispatchBySelectors), so 500 non-matching messages
 * ahead cost about one evaluation each, not one each per delivered message; an entry put back
 * before that position (a redelivery) is seen again, and order holds.
 */
import type { DeliveredMessage } from '@keel/protocol';
import { Broker } from '../broker';
import type { ConnectionState } from '../connection';
import { MemoryDatabase, MemoryStore } from '../store/memory-store';

let broker: Broker;
let conn: ConnectionState;

beforeEach(async () => {
  const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
  await store.open();
  await store.takeOver('node-1', 'test');
  broker = new Broker({
    nodeName: 'node-1',
    store,
    recoveryHoldMs: 0,
    memoryWindow: 5000,
    redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 },
  });
  await broker.start();
  conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
});

afterEach(async () => {
  await broker?.stop();
});

async function send(i: number, colour: string, priority = 4): Promise<void> {
  await broker.send(conn, {
    destination: 'queue://scan',
    persistent: true,
    priority,
    timestamp: Date.now(),
    expiration: 0,
    properties: { colour, n: i },
    body: Buffer.from(`m${i}`),
  });
}

/** A selector consumer (prefetch 1) whose selector evaluations are counted. */
async function countingConsumer(id: string, selector: string, onMessage: (m: DeliveredMessage) => void) {
  const c = await broker.subscribe(
    conn,
    { consumerId: id, destination: 'queue://scan', prefetch: 1, selector },
    (d) => onMessage(d.message),
  );
  const s = c.selector!;
  const matches = s.matches;
  const counter = { evaluations: 0 };
  Object.defineProperty(s, 'matches', {
    value: (subject: Parameters<typeof matches>[0]) => {
      counter.evaluations += 1;
      return matches(subject);
    },
  });
  return counter;
}

test('500 non-matching waiting messages are evaluated about once each, not once per delivery', async () => {
  const got: string[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const counter = await countingConsumer('red', "colour = 'red'", (m) => {
    got.push(m.body.toString());
    const last = got.length === 50;
    // Acknowledge on the next turn, as a client does: each ack gives one credit, one dispatch pass.
    // The test goes on once the last ack has been applied, so the depth below counts it.
    setImmediate(() => void broker.ack(conn, 'red', [m.messageId]).then(() => last && done()));
  });
  for (let i = 0; i < 500; i++) await send(i, 'blue');
  for (let i = 500; i < 550; i++) await send(i, 'red');
  await all;
  expect(got).toEqual(Array.from({ length: 50 }, (_, k) => `m${500 + k}`));
  // Before: every delivery rescanned the 500 blue ones (over 25,000 evaluations).
  expect(counter.evaluations).toBeLessThan(1_200);
  expect(broker.listQueues().find((q) => q.name === 'scan')!.depth).toBe(500);
});

test('a message put back before the remembered position is delivered, in order', async () => {
  const got: string[] = [];
  const waiters: (() => void)[] = [];
  let nacked = false;
  await countingConsumer('red', "colour = 'red'", (m) => {
    const body = m.body.toString();
    got.push(body);
    setImmediate(() => {
      // The first red one comes back once (a redelivery puts it back at its place in the queue).
      if (body === 'm100' && !nacked) {
        nacked = true;
        broker.nack(conn, 'red', [m.messageId]);
      } else void broker.ack(conn, 'red', [m.messageId]);
      waiters.shift()?.();
    });
  });
  for (let i = 0; i < 100; i++) await send(i, 'blue');
  const wait = () => new Promise<void>((r) => waiters.push(r));
  let next = wait();
  await send(100, 'red');
  await next; // m100 delivered and nacked
  next = wait();
  await next; // m100 again
  for (let i = 101; i < 105; i++) await send(i, 'red');
  await send(105, 'red', 9); // a higher priority: before every position the consumer skipped
  while (got.length < 7) await wait();
  expect(got[0]).toBe('m100');
  expect(got[1]).toBe('m100');
  expect(got.slice(2).sort()).toEqual(['m101', 'm102', 'm103', 'm104', 'm105']);
  expect(got.filter((b) => b !== 'm105').slice(2)).toEqual(['m101', 'm102', 'm103', 'm104']);
});
