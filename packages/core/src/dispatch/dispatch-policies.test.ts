/**
 * Message groups, exclusive consumers and consumer priority (issue #21 points 2 and 3), on a broker
 * over the in-memory store: ActiveMQ "Message Groups", "Exclusive Consumer", "Consumer Priority".
 */
import type { DeliveredMessage, Properties } from '@keel/protocol';
import { Broker } from '../broker';
import type { ConnectionState } from '../connection';
import type { BrokerConsumer } from '../consumer';
import { MemoryDatabase, MemoryStore } from '../store/memory-store';
import { GROUP_FIRST_FOR_CONSUMER } from './message-groups';

interface Got {
  consumer: string;
  message: DeliveredMessage;
}

const Q = 'queue://work';

describe('dispatch policies', () => {
  let broker: Broker;
  let conn: ConnectionState;
  let got: Got[];
  let waiters: { n: number; resolve: () => void }[];

  async function start(redeliveryDelay = 0): Promise<void> {
    const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({
      nodeName: 'node-1',
      store,
      recoveryHoldMs: 0,
      redelivery: { initialRedeliveryDelay: redeliveryDelay, redeliveryDelay },
    });
    await broker.start();
    conn = broker.openConnection({ protocol: 'internal' });
    got = [];
    waiters = [];
  }

  afterEach(async () => {
    await broker?.stop();
  });

  function received(n: number): Promise<void> {
    return new Promise((resolve) => {
      if (got.length >= n) resolve();
      else waiters.push({ n, resolve });
    });
  }

  function subscribe(
    id: string,
    options: { prefetch?: number; exclusive?: boolean; priority?: number; destination?: string } = {},
  ): Promise<BrokerConsumer> {
    return broker.subscribe(
      conn,
      { consumerId: id, destination: Q, prefetch: options.prefetch ?? 100, ...options },
      (d) => {
        got.push({ consumer: id, message: d.message });
        waiters = waiters.filter((w) => {
          if (got.length < w.n) return true;
          w.resolve();
          return false;
        });
      },
    );
  }

  function send(body: string, properties: Properties = {}): Promise<unknown> {
    return broker.send(conn, {
      destination: Q,
      persistent: true,
      priority: 4,
      timestamp: Date.now(),
      expiration: 0,
      properties,
      body: Buffer.from(body),
    });
  }

  const ack = (g: Got) => broker.ack(conn, g.consumer, [g.message.messageId]);
  const bodies = (list: Got[]) => list.map((g) => g.message.body.toString());
  const first = (g: Got) => g.message.properties[GROUP_FIRST_FOR_CONSUMER] === true;

  describe('message groups', () => {
    it('keeps each group on one consumer, in order, first flagged, groups spread', async () => {
      await start();
      await subscribe('a');
      await subscribe('b');
      const sends: Promise<unknown>[] = [];
      for (let i = 1; i <= 50; i++)
        for (const g of ['g1', 'g2', 'g3'])
          sends.push(send(`${g}:${i}`, { JMSXGroupID: g, JMSXGroupSeq: i }));
      await Promise.all(sends);
      await received(150);
      const owners = new Set<string>();
      for (const g of ['g1', 'g2', 'g3']) {
        const mine = got.filter((x) => x.message.properties.JMSXGroupID === g);
        expect(new Set(mine.map((x) => x.consumer)).size).toBe(1);
        owners.add(mine[0].consumer);
        expect(mine.map((x) => x.message.properties.JMSXGroupSeq)).toEqual(
          Array.from({ length: 50 }, (_, i) => i + 1),
        );
        expect(mine.map(first)).toEqual([true, ...Array(49).fill(false)]);
      }
      expect(owners).toEqual(new Set(['a', 'b']));
      // Messages without a group still go to both.
      await Promise.all(got.map(ack));
    });

    it('skips a group whose owner is full: other groups and ungrouped messages pass it', async () => {
      await start();
      await subscribe('a', { prefetch: 2 });
      await send('g1:1', { JMSXGroupID: 'g1' });
      await received(1);
      await subscribe('b', { prefetch: 100 });
      for (let i = 2; i <= 5; i++) await send(`g1:${i}`, { JMSXGroupID: 'g1' });
      await send('free');
      await send('g2:1', { JMSXGroupID: 'g2' });
      await received(4);
      // a holds g1:1, g1:2 (full); b gets what is not g1's.
      expect(bodies(got.filter((g) => g.consumer === 'a'))).toEqual(['g1:1', 'g1:2']);
      expect(bodies(got.filter((g) => g.consumer === 'b'))).toEqual(['free', 'g2:1']);
      await ack(got[0]);
      await received(5);
      expect(got[4].consumer).toBe('a');
      expect(got[4].message.body.toString()).toBe('g1:3');
    });

    it('hands a leaving owner’s groups over, its unacknowledged messages first, in order', async () => {
      await start(50);
      await subscribe('a');
      for (let i = 1; i <= 5; i++) await send(`g1:${i}`, { JMSXGroupID: 'g1', JMSXGroupSeq: i });
      await received(5);
      await ack(got[0]);
      await ack(got[1]);
      await subscribe('b');
      broker.unsubscribe(conn, 'a'); // g1:3..5 in flight: redelivered after 50 ms
      for (let i = 6; i <= 8; i++) await send(`g1:${i}`, { JMSXGroupID: 'g1', JMSXGroupSeq: i });
      await received(11);
      const toB = got.filter((g) => g.consumer === 'b');
      expect(bodies(toB)).toEqual(['g1:3', 'g1:4', 'g1:5', 'g1:6', 'g1:7', 'g1:8']);
      expect(toB.map(first)).toEqual([true, false, false, false, false, false]);
      expect(toB.slice(0, 3).every((g) => g.message.redelivered)).toBe(true);
    });

    it('JMSXGroupSeq -1 closes the group: its next message is assigned afresh', async () => {
      await start();
      await subscribe('a');
      await send('g1:1', { JMSXGroupID: 'g1', JMSXGroupSeq: 1 });
      await send('g1:end', { JMSXGroupID: 'g1', JMSXGroupSeq: -1 });
      await received(2);
      expect(got.map(first)).toEqual([true, false]);
      // a owns another group, b none: the reopened g1 goes to b (fewest groups).
      await send('g2:1', { JMSXGroupID: 'g2' });
      await received(3);
      await subscribe('b');
      await Promise.all(got.map(ack));
      await send('g1:again', { JMSXGroupID: 'g1', JMSXGroupSeq: 1 });
      await received(4);
      expect(got[3].consumer).toBe('b');
      expect(first(got[3])).toBe(true);
    });

    it('a closed group does not move while its closing message is in flight', async () => {
      await start();
      await subscribe('a');
      await send('g2:1', { JMSXGroupID: 'g2' });
      await send('g1:end', { JMSXGroupID: 'g1', JMSXGroupSeq: -1 });
      await received(2);
      await subscribe('b');
      await send('g1:next', { JMSXGroupID: 'g1' });
      await new Promise((r) => setImmediate(r));
      expect(got).toHaveLength(2);
      await broker.nack(conn, 'a', [got[1].message.messageId]);
      // The closing message comes back first, to b (fewest groups); the next once it is done.
      await received(3);
      await new Promise((r) => setImmediate(r));
      expect(got).toHaveLength(3);
      await ack(got[2]);
      await received(4);
      expect(bodies(got.slice(2))).toEqual(['g1:end', 'g1:next']);
      expect(got.slice(2).map((g) => g.consumer)).toEqual(['b', 'b']);
    });

    it('a nacked message waiting for its redelivery delay holds its group back, not others', async () => {
      await start(100);
      await subscribe('a');
      await send('g1:1', { JMSXGroupID: 'g1' });
      await received(1);
      broker.nack(conn, 'a', [got[0].message.messageId]);
      await send('g1:2', { JMSXGroupID: 'g1' });
      await send('g2:1', { JMSXGroupID: 'g2' });
      await received(2);
      expect(bodies(got)).toEqual(['g1:1', 'g2:1']);
      await received(4);
      expect(bodies(got)).toEqual(['g1:1', 'g2:1', 'g1:1', 'g1:2']);
    });

    it('a group acknowledged in an open transaction moves only after it settles', async () => {
      await start();
      await subscribe('a');
      await send('g1:1', { JMSXGroupID: 'g1' });
      await received(1);
      broker.begin(conn, 'tx');
      await broker.ack(conn, 'a', [got[0].message.messageId], { txId: 'tx' });
      await subscribe('b');
      broker.unsubscribe(conn, 'a');
      await send('g1:2', { JMSXGroupID: 'g1' });
      await new Promise((r) => setImmediate(r));
      expect(got).toHaveLength(1);
      broker.rollback(conn, 'tx');
      await received(3);
      expect(bodies(got.slice(1))).toEqual(['g1:1', 'g1:2']);
      expect(got.slice(1).map((g) => g.consumer)).toEqual(['b', 'b']);
    });
  });

  describe('exclusive consumers', () => {
    it('gives one consumer everything; when it leaves the next gets the rest, unacked ones first', async () => {
      await start(20);
      await subscribe('a', { exclusive: true });
      await subscribe('b', { exclusive: true });
      await subscribe('c');
      for (let i = 1; i <= 10; i++) await send(`m${i}`);
      await received(10);
      expect(new Set(got.map((g) => g.consumer))).toEqual(new Set(['a']));
      for (const g of got.slice(0, 4)) await ack(g);
      broker.unsubscribe(conn, 'a');
      for (let i = 11; i <= 15; i++) await send(`m${i}`);
      await received(21);
      const rest = got.slice(10);
      expect(rest.every((g) => g.consumer === 'b')).toBe(true);
      expect(bodies(rest)).toEqual(['m5', 'm6', 'm7', 'm8', 'm9', 'm10', 'm11', 'm12', 'm13', 'm14', 'm15']);
      await Promise.all(rest.map(ack));
      // None left with b gone: the plain consumer competes again.
      broker.unsubscribe(conn, 'b');
      await send('m16');
      await received(22);
      expect(got[21].consumer).toBe('c');
    });

    it('takes consumer.exclusive and consumer.priority from the destination (ActiveMQ destination options)', async () => {
      await start();
      await subscribe('a');
      await subscribe('b', { destination: `${Q}?consumer.exclusive=true&consumer.priority=3` });
      await send('m1');
      await send('m2');
      await received(2);
      expect(got.map((g) => g.consumer)).toEqual(['b', 'b']);
      expect(broker.listConsumers().map((c) => c.destinations)).toEqual([[Q], [Q]]);
      await expect(
        broker.subscribe(
          conn,
          { consumerId: 'c', destination: `${Q}?consumer.priority=500`, prefetch: 1 },
          () => {},
        ),
      ).rejects.toThrow(/consumer.priority must be an integer -128..127/);
    });

    it('a higher-priority exclusive consumer takes over, as in ActiveMQ', async () => {
      await start();
      await subscribe('a', { exclusive: true });
      await subscribe('b', { exclusive: true, priority: 10 });
      await send('m1');
      await received(1);
      expect(got[0].consumer).toBe('b');
    });

    it('the exclusive consumer without credit holds the queue: the others get nothing', async () => {
      await start();
      await subscribe('c');
      await subscribe('a', { exclusive: true, prefetch: 1 });
      await send('m1');
      await send('m2');
      await received(1);
      await new Promise((r) => setImmediate(r));
      expect(got.map((g) => g.consumer)).toEqual(['a']);
      await ack(got[0]);
      await received(2);
      expect(got[1].consumer).toBe('a');
    });
  });

  describe('consumer priority', () => {
    it('the highest-priority consumer gets everything while it has credit', async () => {
      await start();
      await subscribe('low', { priority: 0, prefetch: 100 });
      await subscribe('high', { priority: 127, prefetch: 5 });
      for (let i = 1; i <= 5; i++) await send(`m${i}`);
      await received(5);
      expect(new Set(got.map((g) => g.consumer))).toEqual(new Set(['high']));
      for (let i = 6; i <= 8; i++) await send(`m${i}`);
      await received(8);
      expect(got.slice(5).map((g) => g.consumer)).toEqual(['low', 'low', 'low']);
      await ack(got[0]);
      await send('m9');
      await received(9);
      expect(got[8].consumer).toBe('high');
    });
  });
});
