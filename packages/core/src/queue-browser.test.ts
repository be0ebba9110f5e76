/**
 * Browsing subscriptions (Broker.subscribe with `browse`, queue-browser.ts) over the memory store:
 * a snapshot in delivery order across the memory window and the store, nothing consumed, an end
 * marker, then silence. The same over Postgres and real sockets: test/e2e/browse.test.ts.
 */
import type { Message } from '@keel/protocol';
import { Broker } from './broker';
import type { ConnectionState } from './connection';
import type { Delivery } from './consumer';
import type { QueueBrowser } from './queue-browser';
import { MemoryDatabase, MemoryStore } from './store/memory-store';

function msg(destination: string, text: string, extra: Partial<Message> = {}): Message {
  return {
    destination,
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(text),
    ...extra,
  };
}

/** Deliveries of one subscription; resolves waiters on the n-th delivery or the end marker. */
class Inbox {
  readonly items: Delivery[] = [];
  private notify: (() => void) | null = null;
  readonly sink = (d: Delivery): void => {
    this.items.push(d);
    const n = this.notify;
    this.notify = null;
    n?.();
  };
  get messages(): Delivery[] {
    return this.items.filter((d) => !d.browseEnd);
  }
  get ended(): boolean {
    return this.items.some((d) => d.browseEnd);
  }
  texts(): string[] {
    return this.messages.map((d) => d.message.body.toString());
  }
  async until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (got ${this.items.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.notify = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }
}

describe('queue browser', () => {
  let broker: Broker;
  let store: MemoryStore;
  let conn: ConnectionState;

  async function start(memoryWindow = 2000): Promise<void> {
    store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({
      nodeName: 'node-1',
      store,
      memoryWindow,
      redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 },
    });
    await broker.start();
    conn = broker.openConnection({ protocol: 'native', clientId: 'test' });
  }

  afterEach(async () => {
    await broker?.stop();
    await store?.close();
  });

  async function browse(destination: string, prefetch = 1000, ackOnDelivery = true) {
    const inbox = new Inbox();
    const consumerId = `b${Math.random()}`;
    const browser = (await broker.subscribe(
      conn,
      { consumerId, destination, prefetch, ackOnDelivery, browse: true },
      inbox.sink,
    )) as QueueBrowser;
    return { inbox, browser, consumerId };
  }

  it('shows every message without consuming it, then the end marker; a consumer still gets them all', async () => {
    await start();
    for (let i = 0; i < 5; i++) await broker.send(conn, msg('queue://q', `m${i}`));
    const { inbox } = await browse('queue://q');
    await inbox.until(() => inbox.ended, 'the end marker');
    expect(inbox.texts()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    const end = inbox.items[inbox.items.length - 1]!;
    expect(end.browseEnd).toBe(true);
    expect(end.message).toMatchObject({ destination: 'queue://q', messageId: '0' });
    expect(end.message.body.length).toBe(0);
    for (const d of inbox.messages) expect(d.message).toMatchObject({ deliveryCount: 0, redelivered: false });
    expect(broker.getQueue('q')).toMatchObject({ depth: 5, dequeued: 0, inflight: 0 });

    const consumer = new Inbox();
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://q', prefetch: 10 }, consumer.sink);
    await consumer.until(() => consumer.items.length === 5, '5 messages');
    expect(consumer.texts()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    // First delivery: browsing counted nothing.
    for (const d of consumer.items) expect(d.message).toMatchObject({ deliveryCount: 0, redelivered: false });
  });

  it('browses a backlog beyond the memory window in delivery order (priority, then arrival)', async () => {
    await start(10);
    const expected: string[] = [];
    for (let i = 0; i < 60; i++) {
      const priority = i % 3 === 0 ? 7 : 4;
      await broker.send(conn, msg('queue://big', `m${i}`, { priority }));
    }
    for (const p of [7, 4])
      for (let i = 0; i < 60; i++) if ((i % 3 === 0 ? 7 : 4) === p) expected.push(`m${i}`);
    expect(broker.getQueue('big')!.inMemory).toBeLessThan(60);
    const { inbox } = await browse('queue://big');
    await inbox.until(() => inbox.ended, 'the end marker');
    expect(inbox.texts()).toEqual(expected);
    expect(broker.getQueue('big')).toMatchObject({ depth: 60, dequeued: 0 });
  });

  it('shows in-flight messages with their flags untouched and leaves them with their consumer', async () => {
    await start();
    for (let i = 0; i < 4; i++) await broker.send(conn, msg('queue://f', `m${i}`));
    const consumer = new Inbox();
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://f', prefetch: 2 }, consumer.sink);
    await consumer.until(() => consumer.items.length === 2, '2 deliveries');
    const { inbox } = await browse('queue://f');
    await inbox.until(() => inbox.ended, 'the end marker');
    expect(inbox.texts()).toEqual(['m0', 'm1', 'm2', 'm3']);
    // The consumer acknowledges what it holds and gets the rest, first delivery each.
    await broker.ack(conn, 'c', [consumer.items[1]!.message.messageId], { cumulative: true });
    await consumer.until(() => consumer.items.length === 4, '4 deliveries');
    expect(consumer.texts()).toEqual(['m0', 'm1', 'm2', 'm3']);
    for (const d of consumer.items) expect(d.message.redelivered).toBe(false);
  });

  it('is a snapshot: later sends are not shown, and nothing is delivered after the end marker', async () => {
    await start(10);
    for (let i = 0; i < 30; i++) await broker.send(conn, msg('queue://s', `m${i}`));
    // prefetch 3 and no ack on delivery: credit paces it (native)
    const { inbox, consumerId } = await browse('queue://s', 3, false);
    await inbox.until(() => inbox.items.length === 3, '3 messages');
    for (let i = 30; i < 40; i++) await broker.send(conn, msg('queue://s', `m${i}`));
    expect(inbox.items).toHaveLength(3);
    // Acks of browsed messages do nothing and give no credit; CREDIT does.
    await broker.ack(conn, consumerId, [inbox.items[0]!.message.messageId]);
    expect(inbox.items).toHaveLength(3);
    broker.consumer(conn, consumerId).addCredit(100);
    await inbox.until(() => inbox.ended, 'the end marker');
    expect(inbox.texts()).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
    await broker.send(conn, msg('queue://s', 'after'));
    broker.consumer(conn, consumerId).addCredit(100);
    await new Promise((r) => setImmediate(r));
    expect(inbox.items).toHaveLength(31);
    expect(broker.getQueue('s')!.depth).toBe(41);
  });

  it('stops when unsubscribed mid-browse', async () => {
    await start(10);
    for (let i = 0; i < 30; i++) await broker.send(conn, msg('queue://u', `m${i}`));
    const { inbox, consumerId, browser } = await browse('queue://u', 5, false);
    await inbox.until(() => inbox.items.length === 5, '5 messages');
    broker.unsubscribe(conn, consumerId);
    browser.addCredit(100);
    await new Promise((r) => setImmediate(r));
    expect(inbox.items).toHaveLength(5);
    expect(inbox.ended).toBe(false);
    expect(conn.consumers.has(consumerId)).toBe(false);
    expect(broker.getQueue('u')!.depth).toBe(30);
  });

  it('refuses a topic, a wildcard and a durable subscription', async () => {
    await start();
    const sink = (): void => {};
    for (const destination of ['topic://t', 'queue://orders.>', 'topic://t.*']) {
      await expect(
        broker.subscribe(conn, { consumerId: destination, destination, prefetch: 1, browse: true }, sink),
      ).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/only a queue can be browsed/),
      });
    }
    expect(conn.consumers.size).toBe(0);
  });

  it('browses an empty queue: just the end marker', async () => {
    await start();
    const { inbox } = await browse('queue://empty');
    await inbox.until(() => inbox.ended, 'the end marker');
    expect(inbox.items).toHaveLength(1);
  });
});
