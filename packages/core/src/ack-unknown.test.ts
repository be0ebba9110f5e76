/**
 * docs/protocol.md, section 7: acknowledging a message id that is not in flight for that consumer is
 * ignored (a failover client may acknowledge a delivery of its previous connection).
 */
import type { DeliveredMessage } from '@keel/protocol';
import { Broker } from './broker';
import { MemoryDatabase, MemoryStore } from './store/memory-store';

describe('an ack of a message id not in flight', () => {
  let broker: Broker;
  afterEach(async () => {
    await broker?.stop();
  });

  it('is ignored: no error, and the consumer keeps its own delivery', async () => {
    const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0 });
    await broker.start();
    const conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    let delivered!: (m: DeliveredMessage) => void;
    const first = new Promise<DeliveredMessage>((resolve) => {
      delivered = resolve;
    });
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://acks', prefetch: 10 }, (d) =>
      delivered(d.message),
    );
    await broker.send(conn, {
      destination: 'queue://acks',
      persistent: true,
      priority: 4,
      timestamp: Date.now(),
      expiration: 0,
      properties: {},
      body: Buffer.from('kept'),
    });
    const m = await first;
    await expect(broker.ack(conn, 'c', ['999999999'])).resolves.toBeUndefined();
    await expect(broker.ack(conn, 'c', ['999999999'], { cumulative: true })).resolves.toBeUndefined();
    expect(broker.listQueues().find((q) => q.name === 'acks')).toMatchObject({ inflight: 1 });
    await broker.ack(conn, 'c', [m.messageId]);
    expect(broker.listQueues().find((q) => q.name === 'acks')).toMatchObject({ inflight: 0 });
  });
});
