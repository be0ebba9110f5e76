import type { DeliveredMessage, KeelError, Message } from '@keel/protocol';
import { Broker, type BrokerOptions } from '../broker';
import type { Delivery } from '../consumer';
import { MemoryDatabase, MemoryStore } from '../store/memory-store';
import { SystemUsage } from './system-usage';

const KiB = 1024;

function msg(destination: string, size: number, persistent = true, text = ''): Message {
  const body = Buffer.alloc(size, 0x61);
  body.write(text);
  return { destination, persistent, priority: 4, timestamp: Date.now(), expiration: 0, properties: {}, body };
}

async function startBroker(opts: Partial<BrokerOptions> = {}): Promise<Broker> {
  const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
  await store.open();
  await store.takeOver('node-1', 'test');
  const broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0, ...opts });
  await broker.start();
  return broker;
}

function inbox(): { items: DeliveredMessage[]; sink: (d: Delivery) => void; wait(n: number): Promise<void> } {
  const items: DeliveredMessage[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  return {
    items,
    sink: (d) => {
      items.push(d.message);
      if (waiter && items.length >= waiter.n) waiter.resolve();
    },
    wait: (n) =>
      items.length >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiter = { n, resolve })),
  };
}

function queueOf(broker: Broker, name: string) {
  return (
    broker as unknown as { queues: Map<string, { queue: import('../message-queue').MessageQueue }> }
  ).queues.get(name)!.queue;
}

describe('limits in the broker core (issue #23.3)', () => {
  let broker: Broker;
  afterEach(async () => broker?.stop());

  it('a queue holds at most memoryWindowBytes of messages in memory, pages the rest, loses none', async () => {
    broker = await startBroker({ memoryWindowBytes: 256 * KiB });
    const conn = broker.openConnection({ protocol: 'internal' });
    for (let i = 0; i < 40; i++) await broker.send(conn, msg('queue://big', 64 * KiB, true, `m${i};`));
    const q = queueOf(broker, 'queue://big');
    expect(q.depth).toBe(40);
    // The count window (2,000) alone would hold all 40 (2.5 MiB).
    expect(q.memoryBytes).toBeLessThanOrEqual(256 * KiB + 64 * KiB + 256);
    expect(q.isSpilled).toBe(true);
    const box = inbox();
    await broker.subscribe(conn, { consumerId: 'c', destination: 'queue://big', prefetch: 2 }, box.sink);
    const seen: string[] = [];
    for (let i = 0; i < 40; i++) {
      await box.wait(i + 1);
      const m = box.items[i]!;
      seen.push(m.body.toString('utf8', 0, m.body.indexOf(';')));
      expect(q.memoryBytes).toBeLessThanOrEqual(256 * KiB + 2 * (64 * KiB + 256));
      await broker.ack(conn, 'c', [m.messageId]);
    }
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`));
  });

  it('memoryUsage with sendFailIfNoSpace refuses non-persistent sends with RESOURCE_LIMIT past the limit', async () => {
    broker = await startBroker({
      systemUsage: { memoryLimitBytes: 1024 * KiB, sendFailIfNoSpace: true },
    });
    const conn = broker.openConnection({ protocol: 'internal' });
    let accepted = 0;
    let refused: KeelError | null = null;
    for (let i = 0; i < 100 && refused === null; i++) {
      try {
        await broker.send(conn, msg('queue://np', 64 * KiB, false));
        accepted += 1;
      } catch (err) {
        refused = err as KeelError;
      }
    }
    expect(refused?.code).toBe('RESOURCE_LIMIT');
    expect(refused?.message).toMatch(/memoryUsage limit/);
    expect(accepted).toBeGreaterThanOrEqual(14);
    expect(accepted).toBeLessThanOrEqual(16);
    // Consuming frees the memory: sends are accepted again, and every accepted one is there.
    const box = inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'c', destination: 'queue://np', prefetch: 1000, ackOnDelivery: true },
      box.sink,
    );
    await box.wait(accepted);
    await new Promise((r) => setTimeout(r, 20)); // the usage is sampled every 10 ms
    await broker.send(conn, msg('queue://np', 64 * KiB, false));
    await box.wait(accepted + 1);
  });

  it('memoryUsage blocks the producer until a consumer frees memory (no sendFailIfNoSpace)', async () => {
    broker = await startBroker({ systemUsage: { memoryLimitBytes: 512 * KiB, checkIntervalMs: 5 } });
    const conn = broker.openConnection({ protocol: 'internal' });
    const sends: Promise<unknown>[] = [];
    let done = 0;
    for (let i = 0; i < 20; i++)
      sends.push(broker.send(conn, msg('queue://blocked', 64 * KiB, false)).then(() => (done += 1)));
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBeLessThan(20);
    expect(broker.usage.waiting).toBeGreaterThan(0);
    const box = inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'c', destination: 'queue://blocked', prefetch: 1000, ackOnDelivery: true },
      box.sink,
    );
    await Promise.all(sends);
    await box.wait(20);
    expect(box.items).toHaveLength(20);
  });

  it('sendFailIfNoSpaceAfterTimeout refuses a send blocked that long', async () => {
    broker = await startBroker({
      systemUsage: { memoryLimitBytes: 128 * KiB, sendFailIfNoSpaceAfterTimeoutMs: 30 },
    });
    const conn = broker.openConnection({ protocol: 'internal' });
    await broker.send(conn, msg('queue://t', 100 * KiB, false));
    await expect(broker.send(conn, msg('queue://t', 100 * KiB, false))).rejects.toMatchObject({
      code: 'RESOURCE_LIMIT',
      message: expect.stringMatching(/sendFailIfNoSpaceAfterTimeout/),
    });
  });

  it('storeUsage refuses persistent sends, not non-persistent ones', async () => {
    broker = await startBroker({ systemUsage: { storeLimitBytes: 1000, sendFailIfNoSpace: true } });
    const conn = broker.openConnection({ protocol: 'internal' });
    broker.usage.reportStoreBytes(5000);
    await expect(broker.send(conn, msg('queue://s', 10))).rejects.toMatchObject({
      code: 'RESOURCE_LIMIT',
      message: expect.stringMatching(/storeUsage limit/),
    });
    await broker.send(conn, msg('queue://s', 10, false));
    broker.usage.reportStoreBytes(0);
    await broker.send(conn, msg('queue://s', 10));
  });

  it('aborts a consumer whose prefetch stays full past maxSlowDuration; its messages go to another', async () => {
    const closed: KeelError[] = [];
    let aborted!: () => void;
    const abortedNow = new Promise<void>((resolve) => (aborted = resolve));
    broker = await startBroker({
      slowConsumer: { maxSlowDurationMs: 60, checkPeriodMs: 20, abortConnection: true },
    });
    const producer = broker.openConnection({ protocol: 'internal' });
    const slowConn = broker.openConnection({
      protocol: 'internal',
      transport: {
        alive: () => true,
        close: (err) => {
          closed.push(err);
          aborted();
        },
      },
    });
    // A full consumer that acknowledges is not slow.
    const busyConn = broker.openConnection({ protocol: 'internal' });
    const busy = inbox();
    await broker.subscribe(busyConn, { consumerId: 'b', destination: 'queue://busy', prefetch: 1 }, (d) => {
      busy.sink(d);
      setTimeout(() => void broker.ack(busyConn, 'b', [d.message.messageId]), 15);
    });
    for (let i = 0; i < 12; i++) await broker.send(producer, msg('queue://busy', 10));
    const slow = inbox();
    await broker.subscribe(
      slowConn,
      { consumerId: 's', destination: 'queue://slow', prefetch: 2 },
      slow.sink,
    );
    for (let i = 0; i < 5; i++) await broker.send(producer, msg('queue://slow', 10, true, `m${i};`));
    await slow.wait(2);
    await abortedNow;
    const fastConn = broker.openConnection({ protocol: 'internal' });
    const fast = inbox();
    await broker.subscribe(
      fastConn,
      { consumerId: 'f', destination: 'queue://slow', prefetch: 10 },
      fast.sink,
    );
    await fast.wait(5);
    await busy.wait(12);
    expect(new Set(fast.items.map((m) => m.body.toString('utf8', 0, 3)))).toEqual(
      new Set(['m0;', 'm1;', 'm2;', 'm3;', 'm4;']),
    );
    expect(closed).toHaveLength(1);
    expect(closed[0]?.code).toBe('RESOURCE_LIMIT');
    expect(slowConn.closed).toBe(true);
    expect(busyConn.closed).toBe(false);
    expect(broker.slowConsumers.aborted).toBe(1);
  });
});

describe('AbortSlowConsumerStrategy with abortConnection false', () => {
  let broker: Broker;
  afterEach(async () => broker?.stop());

  it('closes only the consumer; the connection stays and its messages go to another consumer', async () => {
    broker = await startBroker({
      slowConsumer: { maxSlowDurationMs: 40, checkPeriodMs: 10, abortConnection: false },
    });
    const conn = broker.openConnection({ protocol: 'internal' });
    const removed = new Promise<void>((resolve) => broker.once('consumer:remove', () => resolve()));
    const slow = inbox();
    await broker.subscribe(conn, { consumerId: 's', destination: 'queue://q', prefetch: 1 }, slow.sink);
    for (let i = 0; i < 3; i++) await broker.send(conn, msg('queue://q', 10, true, `m${i};`));
    await removed;
    expect(conn.closed).toBe(false);
    expect(conn.consumers.has('s')).toBe(false);
    const other = inbox();
    await broker.subscribe(conn, { consumerId: 'o', destination: 'queue://q', prefetch: 10 }, other.sink);
    await other.wait(3);
    expect(other.items.map((m) => m.body.toString('utf8', 0, 3)).sort()).toEqual(['m0;', 'm1;', 'm2;']);
  });
});

describe('SystemUsage', () => {
  it('lets one message through an empty broker whatever its size', () => {
    const usage = new SystemUsage({ memoryLimitBytes: 10 }, () => 0);
    expect(usage.acquire(1000, false)).toBeNull();
    const blocked = usage.acquire(1000, false);
    expect(blocked).not.toBeNull();
    usage.close();
    return expect(blocked).rejects.toMatchObject({ code: 'NOT_MASTER' });
  });
});
