/**
 * Selector consumers on a queue (issue #21.1), over the memory store: exactly the matching messages,
 * in order; the others stay; a non-matching head does not block.
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
  broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0, memoryWindow: 20 });
  await broker.start();
  conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
});

afterEach(async () => {
  await broker?.stop();
});

async function send(i: number, colour: string): Promise<void> {
  await broker.send(conn, {
    destination: 'queue://sel',
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: { colour, n: i },
    body: Buffer.from(`m${i}`),
  });
}

/** A consumer that acknowledges each message; `until(n)` resolves once it has n. */
async function consumer(id: string, selector: string, prefetch: number) {
  const got: DeliveredMessage[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  await broker.subscribe(conn, { consumerId: id, destination: 'queue://sel', prefetch, selector }, (d) => {
    got.push(d.message);
    void broker.ack(conn, id, [d.message.messageId]);
    for (const w of waiters) if (got.length >= w.n) w.resolve();
  });
  return {
    got,
    until: (n: number) =>
      new Promise<void>((resolve) => {
        if (got.length >= n) resolve();
        else waiters.push({ n, resolve });
      }),
  };
}

test('complementary selectors split a queue exactly, each in order', async () => {
  for (let i = 0; i < 100; i++) await send(i, i % 3 === 0 ? 'red' : 'blue');
  const red = await consumer('red', "colour = 'red'", 3);
  const blue = await consumer('blue', "NOT colour = 'red'", 3);
  await Promise.all([red.until(34), blue.until(66)]);
  expect(red.got.map((m) => m.body.toString())).toEqual(Array.from({ length: 34 }, (_, k) => `m${k * 3}`));
  expect(blue.got.map((m) => Number(m.properties.n))).toEqual(
    Array.from({ length: 100 }, (_, i) => i).filter((i) => i % 3 !== 0),
  );
});

test('matching messages behind a spilled non-matching backlog arrive; the others stay', async () => {
  for (let i = 0; i < 200; i++) await send(i, 'blue');
  for (let i = 200; i < 205; i++) await send(i, 'red');
  const red = await consumer('red', "colour = 'red' AND n >= 200", 10);
  await red.until(5);
  expect(red.got.map((m) => m.body.toString())).toEqual(['m200', 'm201', 'm202', 'm203', 'm204']);
  const q = broker.listQueues().find((x) => x.name === 'sel')!;
  expect(q.depth).toBe(200);
  expect(q.inMemory).toBeLessThanOrEqual(30);
});

test('an invalid selector is refused with INVALID_SELECTOR and subscribes nothing', async () => {
  await expect(
    broker.subscribe(
      conn,
      { consumerId: 'x', destination: 'queue://sel', prefetch: 1, selector: 'a =' },
      () => {},
    ),
  ).rejects.toMatchObject({ code: 'INVALID_SELECTOR', message: expect.stringContaining('offset 3') });
  expect(broker.listConsumers()).toHaveLength(0);
});
