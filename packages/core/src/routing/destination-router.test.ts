import { type Destination, formatDestination, type Message } from '@keel/protocol';
import { Broker, type BrokerOptions } from '../broker';
import type { ConnectionState } from '../connection';
import type { Delivery } from '../consumer';
import { MemoryDatabase, MemoryStore } from '../store/memory-store';
import { DestinationRouter, type RoutingOptions } from './destination-router';

const keys = (ds: Destination[] | null): string[] | null => (ds === null ? null : ds.map(formatDestination));

function router(options: RoutingOptions = {}, queues: string[] = []): DestinationRouter {
  return new DestinationRouter(options, () => queues);
}

describe('DestinationRouter', () => {
  it('leaves plain destinations alone (null: no routing)', () => {
    const r = router({}, ['Consumer.A.VirtualTopic.x']);
    expect(r.routes({ type: 'queue', name: 'orders' })).toBeNull();
    expect(r.routes({ type: 'topic', name: 'prices' })).toBeNull();
    // A queue named like a virtual topic is an ordinary queue.
    expect(r.routes({ type: 'queue', name: 'VirtualTopic.x' })).toBeNull();
  });

  it("routes topic VirtualTopic.X to the topic and each queue Consumer.*.VirtualTopic.X that exists (ActiveMQ's default)", () => {
    const queues = [
      'Consumer.A.VirtualTopic.x',
      'Consumer.B.VirtualTopic.x',
      'Consumer.C.VirtualTopic.y',
      'x',
    ];
    const r = router({}, queues);
    expect(keys(r.routes({ type: 'topic', name: 'VirtualTopic.x' }))).toEqual([
      'topic://VirtualTopic.x',
      'queue://Consumer.A.VirtualTopic.x',
      'queue://Consumer.B.VirtualTopic.x',
    ]);
    // A queue that comes later receives what is published after it exists.
    queues.push('Consumer.D.VirtualTopic.x');
    r.queuesChanged();
    expect(r.routes({ type: 'topic', name: 'VirtualTopic.x' })).toHaveLength(4);
  });

  it('takes configured virtual topic names, prefixes and postfixes; [] turns them off', () => {
    const queues = ['VT.orders.consumer.A', 'Consumer.A.VirtualTopic.orders'];
    const r = router({ virtualTopics: [{ name: 'orders', prefix: 'VT.', postfix: '.consumer.*' }] }, queues);
    expect(keys(r.routes({ type: 'topic', name: 'orders' }))).toEqual([
      'topic://orders',
      'queue://VT.orders.consumer.A',
    ]);
    expect(r.routes({ type: 'topic', name: 'VirtualTopic.orders' })).toBeNull();
    expect(
      router({ virtualTopics: [] }, queues).routes({ type: 'topic', name: 'VirtualTopic.orders' }),
    ).toBeNull();
  });

  it("splits a composite destination; a member without a type takes the first one's", () => {
    const r = router();
    expect(keys(r.routes({ type: 'queue', name: 'a,/queue/b,/topic/c,topic://d,e' }))).toEqual([
      'queue://a',
      'queue://b',
      'topic://c',
      'topic://d',
      'queue://e',
    ]);
    expect(keys(r.routes({ type: 'topic', name: 'a,b' }))).toEqual(['topic://a', 'topic://b']);
    expect(keys(r.routes({ type: 'queue', name: 'a,a' }))).toEqual(['queue://a']);
    expect(() => r.routes({ type: 'queue', name: 'a,b.>' })).toThrow(/wildcard/);
  });

  it('forwards configured composites (forwardOnly true by default, false keeps the composite too)', () => {
    const r = router(
      {
        compositeDestinations: [
          { queue: 'orders', forwardTo: ['/queue/orders.audit', '/topic/orders.events'] },
          { topic: 'prices', forwardTo: ['queue://prices.log'], forwardOnly: false },
          { queue: 'loop', forwardTo: ['/queue/loop', '/queue/other'] },
        ],
      },
      ['Consumer.A.VirtualTopic.v'],
    );
    expect(keys(r.routes({ type: 'queue', name: 'orders' }))).toEqual([
      'queue://orders.audit',
      'topic://orders.events',
    ]);
    expect(keys(r.routes({ type: 'topic', name: 'prices' }))).toEqual([
      'topic://prices',
      'queue://prices.log',
    ]);
    expect(keys(r.routes({ type: 'queue', name: 'loop' }))).toEqual(['queue://other']);
  });

  it('refuses a bad configuration, naming the property', () => {
    expect(() => router({ compositeDestinations: [{ forwardTo: ['/queue/a'] }] })).toThrow(
      /compositeDestinations\[0\]: give exactly one of queue or topic/,
    );
    expect(() => router({ compositeDestinations: [{ queue: 'a', forwardTo: [] }] })).toThrow(/forwardTo/);
    expect(() => router({ compositeDestinations: [{ queue: 'a', forwardTo: ['b'] }] })).toThrow(/expected/);
    expect(() => router({ virtualTopics: [{ name: '', prefix: 'C.' }] })).toThrow(/virtualTopics\[0\]\.name/);
  });
});

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

async function startBroker(db: MemoryDatabase, opts: Partial<BrokerOptions> = {}): Promise<Broker> {
  const store = new MemoryStore({ database: db, cluster: 'test' });
  await store.open();
  await store.takeOver('node-1', 'test');
  const broker = new Broker({ nodeName: 'node-1', store, recoveryHoldMs: 0, ...opts });
  await broker.start();
  return broker;
}

/** Drain `destination` (prefetch 100, acknowledged on delivery) until `n` arrive. */
async function drain(
  broker: Broker,
  conn: ConnectionState,
  destination: string,
  n: number,
): Promise<string[]> {
  const got: string[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const consumerId = `c-${destination}`;
  await broker.subscribe(
    conn,
    { consumerId, destination, prefetch: 100, ackOnDelivery: true },
    (d: Delivery) => {
      got.push(d.message.body.toString());
      if (got.length === n) done();
    },
  );
  if (n > 0) await all;
  broker.unsubscribe(conn, consumerId);
  return got;
}

describe('Broker routing (memory store)', () => {
  let broker: Broker;
  let db: MemoryDatabase;
  let conn: ConnectionState;
  beforeEach(async () => {
    db = new MemoryDatabase();
    broker = await startBroker(db, {
      routing: {
        compositeDestinations: [
          { queue: 'orders', forwardTo: ['/queue/orders.audit', '/topic/orders.events'] },
        ],
      },
    });
    conn = broker.openConnection({ protocol: 'internal' });
  });
  afterEach(async () => {
    await broker.stop();
  });

  it('stores a virtual topic message in every consumer queue that exists, and they survive a takeover', async () => {
    await broker.ensureQueue({ type: 'queue', name: 'Consumer.A.VirtualTopic.orders' });
    await broker.ensureQueue({ type: 'queue', name: 'Consumer.B.VirtualTopic.orders' });
    for (let i = 0; i < 5; i++) await broker.send(conn, msg('topic://VirtualTopic.orders', `m${i}`));
    await broker.stop();
    broker = await startBroker(db); // a takeover: everything from the store
    conn = broker.openConnection({ protocol: 'internal' });
    const expected = ['m0', 'm1', 'm2', 'm3', 'm4'];
    expect(await drain(broker, conn, 'queue://Consumer.A.VirtualTopic.orders', 5)).toEqual(expected);
    expect(await drain(broker, conn, 'queue://Consumer.B.VirtualTopic.orders', 5)).toEqual(expected);
    // The consumer queues came back from the store: a new publish reaches both.
    await broker.send(conn, msg('topic://VirtualTopic.orders', 'after'));
    expect(await drain(broker, conn, 'queue://Consumer.A.VirtualTopic.orders', 1)).toEqual(['after']);
    expect(await drain(broker, conn, 'queue://Consumer.B.VirtualTopic.orders', 1)).toEqual(['after']);
  });

  it('delivers a composite send to each member, the ids of its copies distinct', async () => {
    const topic: string[] = [];
    await broker.subscribe(
      conn,
      { consumerId: 't', destination: 'topic://c', prefetch: 10, ackOnDelivery: true },
      (d) => topic.push(`${d.message.destination} ${d.message.body}`),
    );
    const r = await broker.send(conn, msg('queue://a,/queue/b,/topic/c', 'x'));
    expect(r.messageId).not.toBe('');
    expect(await drain(broker, conn, 'queue://a', 1)).toEqual(['x']);
    expect(await drain(broker, conn, 'queue://b', 1)).toEqual(['x']);
    expect(topic).toEqual(['topic://c x']);
    expect(broker.listQueues().map((q) => q.name)).not.toContain('a,/queue/b,/topic/c');
  });

  it('forwards a configured composite queue to its members only (forwardOnly)', async () => {
    const events: string[] = [];
    await broker.subscribe(
      conn,
      { consumerId: 'e', destination: 'topic://orders.events', prefetch: 10, ackOnDelivery: true },
      (d) => events.push(d.message.body.toString()),
    );
    await broker.send(conn, msg('queue://orders', 'o1'));
    expect(await drain(broker, conn, 'queue://orders.audit', 1)).toEqual(['o1']);
    expect(events).toEqual(['o1']);
    expect(broker.listQueues().map((q) => q.name)).not.toContain('orders');
  });

  it('stores none of the copies when the commit fails, and all of them in a transaction commit', async () => {
    await broker.ensureQueue({ type: 'queue', name: 'Consumer.A.VirtualTopic.t' });
    (broker.store as MemoryStore).failNextCommit();
    await expect(broker.send(conn, msg('queue://p,q', 'lost'))).rejects.toMatchObject({
      code: 'STORE_UNAVAILABLE',
    });
    expect(broker.getQueue('p')?.depth ?? 0).toBe(0);
    expect(broker.getQueue('q')?.depth ?? 0).toBe(0);

    broker.begin(conn, 'tx1');
    await broker.send(conn, msg('queue://p,q', 'tx'), 'tx1');
    await broker.send(conn, msg('topic://VirtualTopic.t', 'vt'), 'tx1');
    expect(broker.getQueue('p')?.depth ?? 0).toBe(0);
    await broker.commit(conn, 'tx1');
    await broker.stop();
    broker = await startBroker(db);
    conn = broker.openConnection({ protocol: 'internal' });
    expect(await drain(broker, conn, 'queue://p', 1)).toEqual(['tx']);
    expect(await drain(broker, conn, 'queue://q', 1)).toEqual(['tx']);
    expect(await drain(broker, conn, 'queue://Consumer.A.VirtualTopic.t', 1)).toEqual(['vt']);
  });

  it('drops a resend of a routed send (one producer sequence for all the copies)', async () => {
    const m = () => msg('queue://r1,r2', 'once', { producerId: 'p1', producerSeq: 1 });
    await broker.send(conn, m());
    expect(await broker.send(conn, m(), undefined, { resent: true })).toMatchObject({ duplicate: true });
    expect(broker.getQueue('r1')?.depth).toBe(1);
    expect(broker.getQueue('r2')?.depth).toBe(1);
  });
});
