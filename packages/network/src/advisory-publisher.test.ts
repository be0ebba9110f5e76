import { Broker, type Delivery, MemoryDatabase, MemoryStore } from '@keel/core';
import {
  AdvisoryPublisher,
  CONSUMER_ADVISORY_WILDCARD,
  consumerAdvisoryTopic,
  NETWORK_DEMAND_PROPERTY,
  parseNetworkDemand,
  SNAPSHOT_END_PROPERTY,
} from './advisory-publisher';

async function startBroker(): Promise<Broker> {
  const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'adv' });
  await store.open();
  await store.takeOver('n1', 'test');
  const broker = new Broker({ nodeName: 'n1', store });
  await broker.start();
  return broker;
}

/** Collects advisories as `destination=count` strings, resolving waiters by count. */
/** A new native connection subscribed to every consumer advisory, recording what it hears. */
async function listenToAdvisories(broker: Broker, consumerId = 'a') {
  const got: string[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  const sink = (d: Delivery): void => {
    const p = d.message.properties;
    // Counts are absolute, so a repeat (the change and the snapshot racing) carries no news: skip it.
    const v =
      p[SNAPSHOT_END_PROPERTY] === true
        ? 'end'
        : `${p.destination}=${p.consumerCount}${p.durableCount !== undefined ? `/${p.durableCount}` : ''}${
            p[NETWORK_DEMAND_PROPERTY] !== undefined ? ` ${p[NETWORK_DEMAND_PROPERTY]}` : ''
          }`;
    if (got[got.length - 1] !== v) got.push(v);
    if (waiter && got.length >= waiter.n) waiter.resolve();
  };
  const until = (n: number): Promise<void> =>
    got.length >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
  await broker.subscribe(
    broker.openConnection({ protocol: 'native' }),
    { consumerId, destination: CONSUMER_ADVISORY_WILDCARD, prefetch: 100, ackOnDelivery: true },
    sink,
  );
  return { got, until };
}

describe('AdvisoryPublisher', () => {
  let broker: Broker;
  afterEach(async () => {
    await broker?.stop();
  });

  it('names advisory topics like ActiveMQ', () => {
    expect(consumerAdvisoryTopic('queue://a.b')).toBe('topic://ActiveMQ.Advisory.Consumer.Queue.a.b');
    expect(consumerAdvisoryTopic('topic://t')).toBe('topic://ActiveMQ.Advisory.Consumer.Topic.t');
  });

  it('publishes local consumer counts, a snapshot to a new listener, and ignores network consumers', async () => {
    broker = await startBroker();
    const pub = new AdvisoryPublisher(broker).attach();
    const app = broker.openConnection({ protocol: 'native' });
    const net = broker.openConnection({ protocol: 'network' });
    await broker.subscribe(app, { consumerId: 'c1', destination: 'queue://q', prefetch: 1 }, () => {});

    // A bridge subscribes to the advisories: it first gets the snapshot (q has 1 consumer).
    const l = await listenToAdvisories(broker);
    await l.until(2);
    expect(l.got).toEqual(['queue://q=1', 'end']);

    await broker.subscribe(net, { consumerId: 'n1', destination: 'queue://q', prefetch: 1 }, () => {});
    await broker.subscribe(app, { consumerId: 'c2', destination: 'topic://t', prefetch: 1 }, () => {});
    await l.until(3);
    broker.unsubscribe(app, 'c1');
    await l.until(4);
    broker.closeConnection(app);
    await l.until(5);
    // The network consumer on q changed nothing.
    expect(l.got).toEqual(['queue://q=1', 'end', 'topic://t=1/0', 'queue://q=0', 'topic://t=0/0']);
    expect(pub.consumerCounts()).toEqual({});
    pub.detach();
  });

  it("advertises durable subscriptions (active or not, the network's own excluded) and their removal", async () => {
    broker = await startBroker();
    const pub = new AdvisoryPublisher(broker, { durablePollMs: 20 }).attach();
    const l = await listenToAdvisories(broker);
    await l.until(1);
    const app = broker.openConnection({ protocol: 'native', clientId: 'app' });
    await broker.subscribe(
      app,
      { consumerId: 'd', destination: 'topic://t', durableName: 'sub', prefetch: 1 },
      () => {},
    );
    await l.until(2);
    // A bridge's own durable subscription (client id network:…) is not demand.
    const net = broker.openConnection({ protocol: 'network', clientId: 'network:x->y:bridge' });
    await broker.subscribe(
      net,
      { consumerId: 'n', destination: 'topic://u', durableName: 'NC-DS_u', prefetch: 1 },
      () => {},
    );
    broker.unsubscribe(app, 'd'); // offline: still one durable subscription
    await l.until(3);
    expect(pub.durableCounts()).toEqual({ 'topic://t': 1 });
    await broker.removeDurable('app', 'sub'); // no consumer event: found by the poll
    await l.until(4);
    expect(l.got).toEqual(['end', 'topic://t=1/1', 'topic://t=0/1', 'topic://t=0/0']);
    expect(pub.durableCounts()).toEqual({});
    pub.detach();
  });

  it('re-advertises the network demand bridges learned (consumerTTL > 1), in snapshots too, until withdrawn', async () => {
    broker = await startBroker();
    const pub = new AdvisoryPublisher(broker).attach();
    const l = await listenToAdvisories(broker);
    await l.until(1);
    pub.setNetworkDemand('b1', 'queue://q', [['C']]);
    await l.until(2);
    // The same path from another bridge changes nothing; a new one does.
    pub.setNetworkDemand('b2', 'queue://q', [['C']]);
    pub.setNetworkDemand('b2', 'queue://q', [['D', 'C']]);
    await l.until(3);
    expect(pub.networkDemandOf('queue://q')).toEqual([['C'], ['D', 'C']]);
    // A new listener gets it in the snapshot.
    const l2 = await listenToAdvisories(broker, 'a2');
    await l2.until(2);
    expect(l2.got).toEqual(['queue://q=0 [["C"],["D","C"]]', 'end']);
    pub.clearNetworkDemand('b2');
    await l.until(5);
    pub.clearNetworkDemand('b1');
    await l.until(6);
    expect(l.got).toEqual([
      'end',
      'queue://q=0 [["C"]]',
      'queue://q=0 [["C"],["D","C"]]',
      'end',
      'queue://q=0 [["C"]]',
      'queue://q=0',
    ]);
    expect(pub.networkDemandOf('queue://q')).toEqual([]);
    pub.detach();
  });

  it('parses networkDemand leniently', () => {
    expect(parseNetworkDemand('[["C"],["D","C"]]')).toEqual([['C'], ['D', 'C']]);
    expect(parseNetworkDemand('[[],["x",1],"y",["ok"]]')).toEqual([['ok']]);
    expect(parseNetworkDemand('not json')).toEqual([]);
    expect(parseNetworkDemand(undefined)).toEqual([]);
  });
});
