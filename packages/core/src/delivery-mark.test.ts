import type { DeliveredMessage, Message } from '@keel/protocol';
import { Broker, type BrokerOptions } from './broker';
import type { ConnectionState } from './connection';
import type { Delivery } from './consumer';
import { MemoryDatabase, MemoryStore } from './store/memory-store';
import type { StoreBatch } from './store/store';

/** A memory store that counts what its commits write (inserts' delivery counts, delivery marks). */
class CountingStore extends MemoryStore {
  marks = 0;
  readonly insertedCounts = new Map<number, number>();

  override async commit(batch: StoreBatch): Promise<void> {
    this.marks += batch.deliveryCounts.length;
    for (const m of batch.inserts) this.insertedCounts.set(m.id, m.deliveryCount);
    await super.commit(batch);
  }
}

function msg(text: string): Message {
  return {
    destination: 'queue://work',
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(text),
  };
}

/** Collects deliveries; a test awaits the n-th. */
class Inbox {
  readonly items: DeliveredMessage[] = [];
  private waiter: { n: number; resolve: () => void } | null = null;
  constructor(private readonly onMessage?: (m: DeliveredMessage) => void) {}
  readonly sink = (d: Delivery): void => {
    this.items.push(d.message);
    this.onMessage?.(d.message);
    if (this.waiter && this.items.length >= this.waiter.n) this.waiter.resolve();
  };
  wait(n: number): Promise<DeliveredMessage[]> {
    if (this.items.length >= n) return Promise.resolve(this.items);
    return new Promise((resolve) => {
      this.waiter = { n, resolve: () => resolve(this.items) };
    });
  }
}

describe('delivery marks: redelivered only for a message delivered before (issue #17.5)', () => {
  let db: MemoryDatabase;
  let store: CountingStore;
  let broker: Broker;
  let conn: ConnectionState;

  async function start(opts: Partial<BrokerOptions> = {}): Promise<void> {
    store = new CountingStore({ database: db, cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0, ...opts });
    await broker.start();
    conn = broker.openConnection({ protocol: 'internal' });
  }

  beforeEach(() => {
    db = new MemoryDatabase();
  });
  afterEach(async () => {
    await broker?.stop();
  });

  it('after a graceful handover flags the delivered-unacknowledged messages and no other', async () => {
    await start();
    for (let i = 0; i < 20; i++) await broker.send(conn, msg(`m${i}`));
    const first = new Inbox();
    await broker.subscribe(conn, { consumerId: 'a', destination: 'queue://work', prefetch: 10 }, first.sink);
    await first.wait(10);
    await broker.ack(
      conn,
      'a',
      first.items.slice(0, 4).map((m) => m.messageId),
    );
    await first.wait(14); // the acks gave 4 credits back
    await broker.stop({ drain: true });

    await start();
    const second = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'b', destination: 'queue://work', prefetch: 100 },
      second.sink,
    );
    const got = await second.wait(16);
    const texts = (ms: DeliveredMessage[]) => ms.map((m) => m.body.toString());
    expect(texts(got.filter((m) => m.redelivered))).toEqual(texts(first.items.slice(4)));
    expect(texts(got.filter((m) => !m.redelivered))).toEqual(['m14', 'm15', 'm16', 'm17', 'm18', 'm19']);
    expect(got.find((m) => m.body.toString() === 'm4')!.deliveryCount).toBe(1);
  });

  it('writes no mark for a message acknowledged before its mark round started', async () => {
    await start();
    for (let i = 0; i < 50; i++) await broker.send(conn, msg(`m${i}`));
    const inbox: Inbox = new Inbox((m) => void broker.ack(conn, 'c', [m.messageId]));
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://work', prefetch: 5 }, inbox.sink);
    await inbox.wait(50);
    await broker.writer!.drain();
    expect(store.marks).toBe(0);
    expect(db.messages.size).toBe(0);
  });

  it('inserts a message dispatched before its insert was written already marked, with no extra write', async () => {
    await start();
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://work', prefetch: 10 }, inbox.sink);
    await broker.send(conn, msg('x')); // concurrent store and dispatch: delivered, then inserted
    const [m] = await inbox.wait(1);
    await broker.writer!.drain();
    expect(store.insertedCounts.get(Number(m.messageId))).toBe(1);
    expect(store.marks).toBe(0);
    broker.stop();
    await start();
    const again = new Inbox();
    await broker.subscribe(conn, { consumerId: 'd', destination: 'queue://work', prefetch: 10 }, again.sink);
    const [back] = await again.wait(1);
    expect(back.redelivered).toBe(true);
  });

  it('keeps a nacked message counted once per delivery across a handover', async () => {
    await start({ redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 } });
    await broker.send(conn, msg('x'));
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://work', prefetch: 1 }, inbox.sink);
    const [m] = await inbox.wait(1);
    broker.nack(conn, 'c', [m.messageId]);
    await inbox.wait(2);
    await broker.stop({ drain: true });
    expect(db.messages.get(Number(m.messageId))?.deliveryCount).toBe(2);
    await start();
    const again = new Inbox();
    await broker.subscribe(conn, { consumerId: 'd', destination: 'queue://work', prefetch: 1 }, again.sink);
    const [back] = await again.wait(1);
    expect(back.redelivered).toBe(true);
    expect(back.deliveryCount).toBe(2);
  });

  it('writes a mark again after its round failed for a passing reason', async () => {
    await start();
    await broker.send(conn, msg('x'));
    store.failNextCommit();
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://work', prefetch: 1 }, inbox.sink);
    const [m] = await inbox.wait(1);
    await new Promise<void>((resolve) => broker.once('store:error', () => resolve()));
    await broker.stop({ drain: true });
    expect(db.messages.get(Number(m.messageId))?.deliveryCount).toBe(1);
  });
});
