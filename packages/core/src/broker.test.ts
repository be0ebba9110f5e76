import { type DeliveredMessage, type Message, StoreError } from '@keel/protocol';
import { Broker, type BrokerOptions } from './broker';
import type { ConnectionState } from './connection';
import type { Delivery } from './consumer';
import { MemoryDatabase, MemoryStore } from './store/memory-store';
import { emptyBatch } from './store/store';

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

/** Collects deliveries and lets a test await the n-th one. */
class Inbox {
  readonly items: DeliveredMessage[] = [];
  private waiters: { n: number; resolve: () => void }[] = [];
  readonly sink = (d: Delivery): void => {
    this.items.push(d.message);
    this.waiters = this.waiters.filter((w) => {
      if (this.items.length >= w.n) w.resolve();
      return this.items.length < w.n;
    });
  };
  wait(n: number, timeoutMs = 3000): Promise<DeliveredMessage[]> {
    if (this.items.length >= n) return Promise.resolve(this.items);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out waiting for ${n} messages, got ${this.items.length}`)),
        timeoutMs,
      );
      this.waiters.push({
        n,
        resolve: () => {
          clearTimeout(t);
          resolve(this.items);
        },
      });
    });
  }
  texts(): string[] {
    return this.items.map((m) => m.body.toString());
  }
}

async function startBroker(opts: Partial<BrokerOptions> = {}, db = new MemoryDatabase()): Promise<Broker> {
  const store = new MemoryStore({ database: db, cluster: 'test' });
  await store.open();
  await store.takeOver('node-1', 'test');
  const broker = new Broker({
    nodeName: 'node-1',
    store,
    redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 },
    recoveryHoldMs: 0,
    ...opts,
  });
  await broker.start();
  return broker;
}

describe('Broker over the memory store', () => {
  let broker: Broker;
  let conn: ConnectionState;
  afterEach(async () => {
    await broker?.stop();
  });

  it('delivers queue messages FIFO within a priority, highest priority first', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal', clientId: 'c1' });
    for (const [t, p] of [
      ['a', 4],
      ['b', 9],
      ['c', 4],
      ['d', 0],
      ['e', 9],
    ] as const) {
      await broker.send(conn, msg('queue://orders', t, { priority: p }));
    }
    const inbox = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'k1', destination: 'queue://orders', prefetch: 10 },
      inbox.sink,
    );
    await inbox.wait(5);
    expect(inbox.texts()).toEqual(['b', 'e', 'a', 'c', 'd']);
  });

  it('shares a queue between competing consumers by credit, and prefetch bounds what is in flight', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    const a = new Inbox();
    const b = new Inbox();
    await broker.subscribe(conn, { consumerId: 'a', destination: 'queue://work', prefetch: 3 }, a.sink);
    await broker.subscribe(conn, { consumerId: 'b', destination: 'queue://work', prefetch: 3 }, b.sink);
    for (let i = 0; i < 10; i++) await broker.send(conn, msg('queue://work', `m${i}`));
    await a.wait(3);
    await b.wait(3);
    await new Promise((r) => setImmediate(r));
    expect(a.items.length + b.items.length).toBe(6);
    expect(broker.getQueue('work')!.depth).toBe(10);
    await broker.ack(
      conn,
      'a',
      a.items.map((m) => m.messageId),
    );
    await a.wait(6);
    expect(broker.getQueue('work')!.depth).toBe(7);
  });

  it('gives every topic subscriber its copy and matches wildcards', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    const exact = new Inbox();
    const star = new Inbox();
    const tail = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'x', destination: 'topic://prices.eu.fr', prefetch: 100, ackOnDelivery: true },
      exact.sink,
    );
    await broker.subscribe(
      conn,
      { consumerId: 's', destination: 'topic://prices.*.fr', prefetch: 100, ackOnDelivery: true },
      star.sink,
    );
    await broker.subscribe(
      conn,
      { consumerId: 't', destination: 'topic://prices.>', prefetch: 100, ackOnDelivery: true },
      tail.sink,
    );
    await broker.send(conn, msg('topic://prices.eu.fr', '1'));
    await broker.send(conn, msg('topic://prices.eu.de', '2'));
    await broker.send(conn, msg('topic://prices', '3'));
    await tail.wait(2);
    await star.wait(1);
    expect(exact.texts()).toEqual(['1']);
    expect(star.texts()).toEqual(['1']);
    expect(tail.texts()).toEqual(['1', '2']);
  });

  it('keeps messages for an absent durable subscriber and survives a restart', async () => {
    const db = new MemoryDatabase();
    broker = await startBroker({}, db);
    conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const first = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'd', destination: 'topic://news', prefetch: 10, durableName: 'sub1' },
      first.sink,
    );
    broker.unsubscribe(conn, 'd');
    await broker.send(conn, msg('topic://news', 'while away'));
    await broker.stop();
    broker = await startBroker({}, db);
    const conn2 = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    const second = new Inbox();
    await broker.subscribe(
      conn2,
      { consumerId: 'd', destination: 'topic://news', prefetch: 10, durableName: 'sub1' },
      second.sink,
    );
    const [m] = await second.wait(1);
    expect(m.body.toString()).toBe('while away');
    // Recovered from an earlier epoch but never delivered: not redelivered (issue #17.5).
    expect(m.redelivered).toBe(false);
    expect(m.deliveryCount).toBe(0);
    await broker.ack(conn2, 'd', [m.messageId]);
    expect(broker.listDurables()[0].pending).toBe(0);
  });

  it('redelivers after nack with a growing delivery count, then dead-letters with the reason', async () => {
    broker = await startBroker({
      redelivery: { maximumRedeliveries: 2, initialRedeliveryDelay: 0, redeliveryDelay: 0 },
    });
    conn = broker.openConnection({ protocol: 'internal' });
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://jobs', prefetch: 1 }, inbox.sink);
    await broker.send(conn, msg('queue://jobs', 'poison'));
    for (let i = 1; i <= 3; i++) {
      const items = await inbox.wait(i);
      broker.nack(conn, 'k', [items[i - 1].messageId]);
    }
    expect(inbox.items.map((m) => m.deliveryCount)).toEqual([0, 1, 2]);
    expect(inbox.items[1].redelivered).toBe(true);
    const dlq = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'dlq', destination: 'queue://ActiveMQ.DLQ', prefetch: 1 },
      dlq.sink,
    );
    const [dead] = await dlq.wait(1);
    expect(dead.body.toString()).toBe('poison');
    expect(dead.originalDestination).toBe('queue://jobs');
    expect(dead.dlqReason).toMatch(/maximumRedeliveries=2/);
  });

  it('uses individual dead-letter queues when configured', async () => {
    broker = await startBroker({
      redelivery: { maximumRedeliveries: 0 },
      deadLetter: { strategy: 'individual' },
    });
    conn = broker.openConnection({ protocol: 'internal' });
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://jobs', prefetch: 1 }, inbox.sink);
    await broker.send(conn, msg('queue://jobs', 'x'));
    const [m] = await inbox.wait(1);
    broker.nack(conn, 'k', [m.messageId]);
    const dlq = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'dlq', destination: 'queue://DLQ.jobs', prefetch: 1 },
      dlq.sink,
    );
    await dlq.wait(1);
  });

  it('never delivers an expired message', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    await broker.send(conn, msg('queue://q', 'old', { expiration: Date.now() - 1 }));
    await broker.send(conn, msg('queue://q', 'fresh', { expiration: Date.now() + 60_000 }));
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://q', prefetch: 5 }, inbox.sink);
    await inbox.wait(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(inbox.texts()).toEqual(['fresh']);
    expect(broker.getQueue('q')!.expired).toBe(1);
  });

  it('sweeps expired messages to the DLQ, from memory and from a spilled backlog in the store', async () => {
    broker = await startBroker({ memoryWindow: 10 });
    conn = broker.openConnection({ protocol: 'internal' });
    const soon = Date.now() + 50;
    for (let i = 0; i < 30; i++)
      await broker.send(conn, msg('queue://perishable', `p${i}`, { expiration: soon }));
    await broker.send(conn, msg('queue://perishable', 'keeper'));
    expect(broker.getQueue('perishable')!.inMemory).toBeLessThan(30);
    await new Promise((r) => setTimeout(r, 60));
    expect(await broker.sweepExpired()).toBe(30);
    const dlq = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'dlq', destination: 'queue://ActiveMQ.DLQ', prefetch: 100 },
      dlq.sink,
    );
    const dead = await dlq.wait(30);
    expect(
      dead.every((m) => m.dlqReason === 'expired' && m.originalDestination === 'queue://perishable'),
    ).toBe(true);
    const live = new Inbox();
    await broker.subscribe(
      conn,
      { consumerId: 'k', destination: 'queue://perishable', prefetch: 100 },
      live.sink,
    );
    await live.wait(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(live.texts()).toEqual(['keeper']);
  });

  it('redelivers unacknowledged messages when a consumer closes, and acks cumulatively', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    for (let i = 0; i < 4; i++) await broker.send(conn, msg('queue://q', `m${i}`));
    const a = new Inbox();
    await broker.subscribe(conn, { consumerId: 'a', destination: 'queue://q', prefetch: 10 }, a.sink);
    await a.wait(4);
    await broker.ack(conn, 'a', [a.items[1].messageId], { cumulative: true });
    broker.unsubscribe(conn, 'a');
    const b = new Inbox();
    await broker.subscribe(conn, { consumerId: 'b', destination: 'queue://q', prefetch: 10 }, b.sink);
    await b.wait(2);
    expect(b.texts()).toEqual(['m2', 'm3']);
    expect(b.items.every((m) => m.redelivered)).toBe(true);
  });

  it('commits sends and acks of a transaction together; rollback redelivers', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    await broker.send(conn, msg('queue://in', 'input'));
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://in', prefetch: 1 }, inbox.sink);
    const [m] = await inbox.wait(1);
    broker.begin(conn, 'tx1');
    await broker.ack(conn, 'k', [m.messageId], { txId: 'tx1' });
    await broker.send(conn, msg('queue://out', 'output'), 'tx1');
    expect(broker.getQueue('out')).toBeNull();
    broker.rollback(conn, 'tx1');
    const [, again] = await inbox.wait(2);
    expect(again.redelivered).toBe(true);
    broker.begin(conn, 'tx2');
    await broker.ack(conn, 'k', [again.messageId], { txId: 'tx2' });
    await broker.send(conn, msg('queue://out', 'output'), 'tx2');
    await broker.commit(conn, 'tx2');
    expect(broker.getQueue('in')!.depth).toBe(0);
    expect(broker.getQueue('out')!.depth).toBe(1);
    expect(await broker.txOutcome('tx2')).toBe('committed');
    expect(await broker.txOutcome('tx1')).toBe('unknown');
  });

  it('drops a resend of the same producer id and sequence', async () => {
    const db = new MemoryDatabase();
    broker = await startBroker({}, db);
    conn = broker.openConnection({ protocol: 'internal' });
    const r1 = await broker.send(conn, msg('queue://q', 'once', { producerId: 'p1', producerSeq: 1 }));
    const r2 = await broker.send(conn, msg('queue://q', 'once', { producerId: 'p1', producerSeq: 1 }));
    expect(r1.duplicate).toBe(false);
    expect(r2.duplicate).toBe(true);
    await broker.stop();
    // across a takeover the sequence comes from the store
    broker = await startBroker({}, db);
    const c2 = broker.openConnection({ protocol: 'internal' });
    expect(
      (await broker.send(c2, msg('queue://q', 'once', { producerId: 'p1', producerSeq: 1 }))).duplicate,
    ).toBe(true);
    expect(
      (await broker.send(c2, msg('queue://q', 'two', { producerId: 'p1', producerSeq: 2 }))).duplicate,
    ).toBe(false);
    expect(broker.getQueue('q')!.depth).toBe(2);
  });

  describe('network forwards (producer net:<origin>:<id>, sequence 1)', () => {
    const fwd = (id: number, text = `m${id}`) =>
      msg('queue://fq', text, { producerId: `net:east:${id}`, producerSeq: 1, brokerPath: ['east'] });

    it('accepts first attempts without a record of their own, and drops a resend (memory, then store)', async () => {
      const db = new MemoryDatabase();
      broker = await startBroker({}, db);
      conn = broker.openConnection({ protocol: 'network' });
      for (let i = 1; i <= 50; i++) {
        expect((await broker.send(conn, fwd(i), undefined, { resent: false })).duplicate).toBe(false);
      }
      // Recorded per round as forwards of 'east', not as 50 producers.
      expect(await broker.store.forwardedSeen('east', 50)).toBe(true);
      expect(await broker.store.producerSequence('net:east:50')).toBe(-1);
      expect(db.producers.size).toBe(0);
      expect((await broker.send(conn, fwd(7), undefined, { resent: true })).duplicate).toBe(true);
      // Without the flag (a duplex relay that cannot tell) it is checked too.
      expect((await broker.send(conn, fwd(8))).duplicate).toBe(true);
      expect((await broker.send(conn, fwd(51), undefined, { resent: true })).duplicate).toBe(false);
      expect(broker.getQueue('fq')!.depth).toBe(51);
      await broker.stop();
      // After a takeover the committed rounds answer.
      broker = await startBroker({}, db);
      const c2 = broker.openConnection({ protocol: 'network' });
      expect((await broker.send(c2, fwd(7), undefined, { resent: true })).duplicate).toBe(true);
      expect((await broker.send(c2, fwd(51), undefined, { resent: true })).duplicate).toBe(true);
      expect((await broker.send(c2, fwd(52), undefined, { resent: true })).duplicate).toBe(false);
      expect(broker.getQueue('fq')!.depth).toBe(52);
    });

    it('a resend that arrives while the first attempt is in progress waits for its outcome', async () => {
      broker = await startBroker();
      conn = broker.openConnection({ protocol: 'network' });
      const first = broker.send(conn, fwd(1), undefined, { resent: false });
      const again = broker.send(conn, fwd(1), undefined, { resent: true });
      expect((await first).duplicate).toBe(false);
      expect((await again).duplicate).toBe(true);
      expect(broker.getQueue('fq')!.depth).toBe(1);
    });

    it('a forward whose first attempt failed is accepted when it comes again', async () => {
      broker = await startBroker();
      conn = broker.openConnection({ protocol: 'network' });
      await broker.send(conn, fwd(1));
      const store = broker.store as MemoryStore;
      const commit = store.commit.bind(store);
      store.commit = async () => {
        throw new StoreError('database away', 'STORE_UNAVAILABLE', { retryable: true });
      };
      await expect(broker.send(conn, fwd(2), undefined, { resent: false })).rejects.toMatchObject({
        code: 'STORE_UNAVAILABLE',
      });
      store.commit = commit;
      expect((await broker.send(conn, fwd(2), undefined, { resent: true })).duplicate).toBe(false);
      expect(await store.forwardedSeen('east', 2)).toBe(true);
    });

    it('still knows a forward an older Keel recorded as a producer', async () => {
      const db = new MemoryDatabase();
      broker = await startBroker({}, db);
      await broker.store.commit({ ...emptyBatch(), producers: [{ producerId: 'net:east:99', seq: 1 }] });
      conn = broker.openConnection({ protocol: 'network' });
      expect((await broker.send(conn, fwd(99), undefined, { resent: true })).duplicate).toBe(true);
    });
  });

  it('pages a backlog larger than its memory window in delivery order', async () => {
    broker = await startBroker({ memoryWindow: 20 });
    conn = broker.openConnection({ protocol: 'internal' });
    const n = 300;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        broker.send(conn, msg('queue://big', String(i), { priority: i % 50 === 0 ? 9 : 4 })),
      ),
    );
    const info = broker.getQueue('big')!;
    expect(info.depth).toBe(n);
    expect(info.inMemory).toBeLessThanOrEqual(30);
    const inbox = new Inbox();
    let acked = 0;
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://big', prefetch: 5 }, (d) => {
      inbox.sink(d);
      broker.ack(conn, 'k', [d.message.messageId]).then(
        () => (acked += 1),
        () => {},
      );
    });
    await inbox.wait(n, 10000);
    const got = inbox.texts().map(Number);
    expect(new Set(got).size).toBe(n);
    // every priority-9 message (i % 50 === 0) came before the priority-4 messages sent after it
    const nines = got.filter((i) => i % 50 === 0);
    expect(nines).toEqual([...nines].sort((a, b) => a - b));
    const fours = got.filter((i) => i % 50 !== 0);
    expect(fours).toEqual([...fours].sort((a, b) => a - b));
    expect(broker.getQueue('big')!.depth).toBe(0);
  });

  it('finds messages a commit stored although it reported failure, after resyncing with the store', async () => {
    const db = new MemoryDatabase();
    broker = await startBroker({}, db);
    conn = broker.openConnection({ protocol: 'internal' });
    await broker.send(conn, msg('queue://q', 'known'));
    // A row the broker never heard of, as if a COMMIT succeeded but its answer was lost.
    const destId = (await broker.store.loadDestinations()).find((d) => d.name === 'q')!.id;
    await broker.store.commit({
      ...(await import('./store/store')).emptyBatch(),
      inserts: [
        {
          id: broker.store.idBlock * 2 ** 32 + 999,
          destId,
          priority: 4,
          expiration: 0,
          deliveryCount: 0,
          headers: {
            destination: 'queue://q',
            persistent: true,
            priority: 4,
            timestamp: 1,
            expiration: 0,
            properties: {},
          },
          body: Buffer.from('stranded'),
        },
      ],
    });
    await broker.resyncFromStore();
    expect(broker.getQueue('q')!.depth).toBe(2);
    const inbox = new Inbox();
    await broker.subscribe(conn, { consumerId: 'k', destination: 'queue://q', prefetch: 10 }, inbox.sink);
    await inbox.wait(2);
    expect(inbox.texts().sort()).toEqual(['known', 'stranded']);
  });

  /**
   * `count` messages sent to `queue` and delivered to consumer c1 of client 'app', unacknowledged;
   * then a takeover (drained, so the new master knows all were delivered) by a broker with a 300 ms
   * recovery hold, where consumer c2 of another client is subscribed and 'app' is back (`back`).
   */
  async function deliverThenTakeOver(queue: string, count: number, prefetch: number) {
    const db = new MemoryDatabase();
    broker = await startBroker({}, db);
    conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    for (let i = 0; i < count; i++) await broker.send(conn, msg(`queue://${queue}`, `m${i}`));
    const first = new Inbox();
    await broker.subscribe(conn, { consumerId: 'c1', destination: `queue://${queue}`, prefetch }, first.sink);
    await first.wait(count);
    await broker.stop({ drain: true });
    broker = await startBroker({ recoveryHoldMs: 300 }, db);
    const other = broker.openConnection({ protocol: 'internal', clientId: 'other' });
    const second = new Inbox();
    await broker.subscribe(
      other,
      { consumerId: 'c2', destination: `queue://${queue}`, prefetch },
      second.sink,
    );
    const back = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    return { first, second, back };
  }

  it('after a takeover, holds recovered messages while a failover client replays its acknowledgements', async () => {
    // The master hands over before the acks of m0 and m1 reach it.
    const { first, second, back } = await deliverThenTakeOver('work', 3, 10);
    expect(
      broker.ackReplay(back, {
        destination: 'queue://work',
        messageIds: first.items.slice(0, 2).map((m) => m.messageId),
      }),
    ).toEqual({ removed: 2 });
    expect(second.items).toHaveLength(0); // held
    const [m] = await second.wait(1);
    expect(m.body.toString()).toBe('m2');
    expect(m.redelivered).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(second.items).toHaveLength(1);
    expect(broker.getQueue('work')!.depth).toBe(1);
  });

  it('a replayed acknowledgement removes a recovered message the first page did not bring (issue #17)', async () => {
    // More than the first page after a takeover reads (64 rows while no size is known).
    const { first, second, back } = await deliverThenTakeOver('deep', 100, 200);
    // The consumer of the old master replays every acknowledgement the old master may have lost.
    broker.ackReplay(back, { destination: 'queue://deep', messageIds: first.items.map((m) => m.messageId) });
    await broker.send(back, msg('queue://deep', 'after'));
    const [m] = await second.wait(1);
    // Only the new message: none of the 100 consumed ones comes again, from memory or from the store.
    expect(m.body.toString()).toBe('after');
    await new Promise((r) => setTimeout(r, 100));
    expect(second.texts()).toEqual(['after']);
    expect(broker.getQueue('deep')!.depth).toBe(1);
  });

  it('counts the recovery hold from the end of a slow recovery, when clients can connect', async () => {
    const db = new MemoryDatabase();
    broker = await startBroker({}, db);
    conn = broker.openConnection({ protocol: 'internal', clientId: 'app' });
    await broker.send(conn, msg('queue://slow', 'recovered'));
    await broker.stop({ drain: true });
    // A busy machine: reading the queue back takes longer than the whole hold.
    const store = new MemoryStore({ database: db, cluster: 'test' });
    const page = store.pageMessages.bind(store);
    store.pageMessages = async (...args) => {
      await new Promise((r) => setTimeout(r, 400));
      return page(...args);
    };
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 300 });
    await broker.start();
    const inbox = new Inbox();
    const other = broker.openConnection({ protocol: 'internal', clientId: 'other' });
    await broker.subscribe(other, { consumerId: 'c', destination: 'queue://slow', prefetch: 10 }, inbox.sink);
    await new Promise((r) => setTimeout(r, 150));
    expect(inbox.items).toHaveLength(0); // still held: a failover consumer may yet replay its ack
    const [m] = await inbox.wait(1);
    expect(m.body.toString()).toBe('recovered');
  });

  it('rejects bad input with typed errors', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    await expect(broker.send(conn, msg('nowhere', 'x'))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(broker.send(conn, msg('queue://q', 'x', { priority: 12 }))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(broker.send(conn, msg('queue://a.*', 'x'))).rejects.toThrow(/wildcard/);
    expect(() => broker.nack(conn, 'nope', ['1'])).toThrow(/unknown consumer/);
    expect(() => broker.rollback(conn, 'nope')).toThrow(/unknown transaction/);
  });

  it('fences: after another node takes over, writes fail and the broker reports it', async () => {
    const db = new MemoryDatabase();
    broker = await startBroker({}, db);
    conn = broker.openConnection({ protocol: 'internal' });
    const fenced = new Promise((resolve) => broker.once('fenced', resolve));
    (broker.store as MemoryStore).simulateTakeover();
    await expect(broker.send(conn, msg('queue://q', 'late'))).rejects.toMatchObject({ code: 'FENCED' });
    await fenced;
  });

  it('prunes silent producers from memory and store; duplicate detection then asks the store', async () => {
    broker = await startBroker();
    conn = broker.openConnection({ protocol: 'internal' });
    await broker.send(conn, msg('queue://dd', 'one', { producerId: 'px', producerSeq: 1 }));
    // First pass marks, the second (memoryMs 0) forgets it in memory; the store keeps it (1 h).
    expect(await broker.pruneProducers(3_600_000, 0)).toBe(0);
    expect(await broker.pruneProducers(3_600_000, 0)).toBe(0);
    const again = await broker.send(
      conn,
      msg('queue://dd', 'one', { producerId: 'px', producerSeq: 1 }),
      undefined,
      {
        resent: true,
      },
    );
    expect(again.duplicate).toBe(true);
    expect(broker.getQueue('dd')!.depth).toBe(1);
  });
});
