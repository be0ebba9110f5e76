import { Broker, type Delivery, MemoryDatabase, MemoryStore } from '@keel/core';
import { AdvisoryPublisher, CONSUMER_ADVISORY_WILDCARD, consumerAdvisoryTopic } from './advisory-publisher';

async function startBroker(): Promise<Broker> {
  const store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'adv' });
  await store.open();
  await store.takeOver('n1', 'test');
  const broker = new Broker({ nodeName: 'n1', store });
  await broker.start();
  return broker;
}

/** Collects advisories as `destination=count` strings, resolving waiters by count. */
function advisoryListener() {
  const got: string[] = [];
  let waiter: { n: number; resolve: () => void } | null = null;
  const sink = (d: Delivery): void => {
    // Counts are absolute, so a repeat (the change and the snapshot racing) carries no news: skip it.
    const v = `${d.message.properties.destination}=${d.message.properties.consumerCount}`;
    if (got[got.length - 1] !== v) got.push(v);
    if (waiter && got.length >= waiter.n) waiter.resolve();
  };
  const until = (n: number): Promise<void> =>
    got.length >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve }));
  return { got, sink, until };
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
    const l = advisoryListener();
    const listener = broker.openConnection({ protocol: 'native' });
    await broker.subscribe(
      listener,
      { consumerId: 'a', destination: CONSUMER_ADVISORY_WILDCARD, prefetch: 100, ackOnDelivery: true },
      l.sink,
    );
    await l.until(1);
    expect(l.got).toEqual(['queue://q=1']);

    await broker.subscribe(net, { consumerId: 'n1', destination: 'queue://q', prefetch: 1 }, () => {});
    await broker.subscribe(app, { consumerId: 'c2', destination: 'topic://t', prefetch: 1 }, () => {});
    await l.until(2);
    broker.unsubscribe(app, 'c1');
    await l.until(3);
    broker.closeConnection(app);
    await l.until(4);
    // The network consumer on q changed nothing.
    expect(l.got).toEqual(['queue://q=1', 'topic://t=1', 'queue://q=0', 'topic://t=0']);
    expect(pub.consumerCounts()).toEqual({});
    pub.detach();
  });
});
