/**
 * Credit-based flow control with prefetch 0 (docs/protocol.md, section 5): nothing is delivered
 * until the consumer adds credit (a native CREDIT frame), then one message per credit.
 */
import type { DeliveredMessage } from '@keel/protocol';
import { Broker } from './broker';
import { MemoryDatabase, MemoryStore } from './store/memory-store';

describe('prefetch 0 (pull mode)', () => {
  let broker: Broker;
  afterEach(async () => {
    await broker?.stop();
  });

  it('delivers nothing until credit is added, then as many messages as the credit', async () => {
    const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0 });
    await broker.start();
    const conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const got: DeliveredMessage[] = [];
    let waiter: { n: number; resolve: () => void } | null = null;
    const consumer = await broker.subscribe(
      conn,
      { consumerId: 'c', destination: 'queue://pull', prefetch: 0 },
      (d) => {
        got.push(d.message);
        if (waiter && got.length >= waiter.n) waiter.resolve();
      },
    );
    const arrived = (n: number) =>
      new Promise<void>((resolve) => {
        waiter = { n, resolve };
        if (got.length >= n) resolve();
      });
    for (let i = 0; i < 3; i++) {
      await broker.send(conn, {
        destination: 'queue://pull',
        persistent: true,
        priority: 4,
        timestamp: Date.now(),
        expiration: 0,
        properties: {},
        body: Buffer.from(`m${i}`),
      });
    }
    // Every send has been stored (sends resolve after the commit) and dispatch had its turn.
    await new Promise((r) => setImmediate(r));
    expect(got).toHaveLength(0);
    consumer.addCredit(2);
    await arrived(2);
    expect(got.map((m) => m.body.toString())).toEqual(['m0', 'm1']);
    consumer.addCredit(1);
    await arrived(3);
    expect(got.map((m) => m.body.toString())).toEqual(['m0', 'm1', 'm2']);
  });
});
