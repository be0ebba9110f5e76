import { type Connection, type Consumer, connect, type ReceivedMessage } from '@keel/client';
import { type BrokerProcess, startBroker, stopAll, useTestDatabase } from '@keel/testkit';

/**
 * Issue #18.7 on a real broker process: /metrics has redelivery, dead-letter and expiry counters per
 * destination, each series at 0 from the time the destination exists (not only after its first
 * event), and the connections gauge stays at 0 instead of vanishing.
 */
describe('/metrics: redelivered, dead-lettered and expired counters, connections at 0', () => {
  const db = useTestDatabase();
  let broker: BrokerProcess;
  const conns: Connection[] = [];

  beforeAll(async () => {
    broker = await startBroker({
      db: db.url,
      name: 'met-a',
      cluster: 'met',
      // ActiveMQ RedeliveryPolicy: the second redelivery is one too many; no delay between them.
      env: {
        KEEL_MAXIMUM_REDELIVERIES: '1',
        KEEL_INITIAL_REDELIVERY_DELAY: '0',
        KEEL_REDELIVERY_DELAY: '0',
      },
    });
    await broker.waitForRole('master', 30_000);
  });
  afterAll(async () => {
    for (const c of conns) await c.close().catch(() => {});
    await stopAll();
  });

  async function metrics(): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${broker.adminPort}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  }

  /** The value of one series (`name{labels}`, labels in any order), or null when absent. */
  function sample(text: string, name: string, labels: Record<string, string>): number | null {
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries(
        [...m[2]!.matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]] as [string, string]),
      );
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
    }
    return null;
  }

  /** Scrape until `name{labels}` reads `value` (the broker counts as it handles the event). */
  async function until(name: string, labels: Record<string, string>, value: number): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const text = await metrics();
      if (sample(text, name, labels) === value || Date.now() > deadline) return text;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const COUNTERS = [
    'keel_messages_redelivered_total',
    'keel_messages_dead_lettered_total',
    'keel_messages_expired_total',
  ];

  async function open(): Promise<Connection> {
    const c = await connect(`tcp://127.0.0.1:${broker.port}`, { heartbeatMs: 0 });
    conns.push(c);
    return c;
  }

  async function closeConn(c: Connection): Promise<void> {
    conns.splice(conns.indexOf(c), 1);
    await c.close();
  }

  /** The consumer's next message; a step that gets none in 20 s says which step it was. */
  async function next(consumer: Consumer, step: string): Promise<ReceivedMessage> {
    let timer: NodeJS.Timeout | undefined;
    const none = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no message within 20 s: ${step}`)), 20_000);
    });
    try {
      const r = await Promise.race([consumer[Symbol.asyncIterator]().next(), none]);
      if (r.done) throw new Error(`consumer closed: ${step}`);
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  it('counts a redelivery, a dead-lettering and an expiry, every series there at 0 before', async () => {
    // At start: the counters are declared and the connections gauge is there at 0 per protocol.
    const atStart = await metrics();
    for (const name of COUNTERS) expect(atStart).toContain(`# TYPE ${name} counter`);
    expect(sample(atStart, 'keel_connections', { protocol: 'native' })).toBe(0);
    expect(sample(atStart, 'keel_connections', { protocol: 'stomp' })).toBe(0);

    const q = 'queue://met.orders';
    const producerConn = await open();
    const producer = (await producerConn.createSession()).createProducer(q);
    await producer.send('one', { persistent: true });
    // The queue exists: its every counter is there at 0 before any such event.
    const created = await metrics();
    expect(sample(created, 'keel_messages_in_total', { destination: q })).toBe(1);
    for (const name of COUNTERS) expect(sample(created, name, { destination: q })).toBe(0);
    expect(sample(created, 'keel_connections', { protocol: 'native' })).toBe(1);

    // Redelivery: a connection closes with the message unacknowledged.
    const c1 = await open();
    const first = await next(
      await (await c1.createSession({ ackMode: 'individual' })).createConsumer(q),
      'first delivery',
    );
    expect(first.text()).toBe('one');
    await closeConn(c1);
    const afterClose = await until('keel_messages_redelivered_total', { destination: q }, 1);
    expect(sample(afterClose, 'keel_messages_redelivered_total', { destination: q })).toBe(1);
    expect(sample(afterClose, 'keel_messages_dead_lettered_total', { destination: q })).toBe(0);

    // Dead-lettering: a NACK past maximumRedeliveries=1 moves it to ActiveMQ.DLQ.
    const c2 = await open();
    const s2 = await c2.createSession({ ackMode: 'individual' });
    const again = await next(await s2.createConsumer(q), 'redelivery after the connection closed');
    expect(again.redelivered).toBe(true);
    await again.nack();
    const dlqConsumer = await s2.createConsumer('queue://ActiveMQ.DLQ');
    const dead = await next(dlqConsumer, 'dead letter after the NACK');
    expect(dead.text()).toBe('one');
    await dead.ack();
    const afterDlq = await metrics();
    expect(sample(afterDlq, 'keel_messages_redelivered_total', { destination: q })).toBe(1);
    expect(sample(afterDlq, 'keel_messages_dead_lettered_total', { destination: q })).toBe(1);
    expect(sample(afterDlq, 'keel_messages_expired_total', { destination: q })).toBe(0);

    // Expiry: a message whose time to live has passed when a consumer comes.
    const e = 'queue://met.expiring';
    const sentAt = Date.now();
    await (await producerConn.createSession())
      .createProducer(e)
      .send('stale', { persistent: true, timeToLiveMs: 50 });
    const beforeExpiry = await metrics();
    expect(sample(beforeExpiry, 'keel_messages_expired_total', { destination: e })).toBe(0);
    while (Date.now() <= sentAt + 60) await new Promise((r) => setTimeout(r, 10)); // the clock, not the broker
    const c3 = await open();
    const s3 = await c3.createSession({ ackMode: 'individual' });
    await s3.createConsumer(e);
    // The expired message goes to the DLQ on dispatch: the DLQ consumer gets it.
    const expired = await next(dlqConsumer, 'expired message in the DLQ');
    expect(expired.text()).toBe('stale');
    await expired.ack();
    const afterExpiry = await until('keel_messages_expired_total', { destination: e }, 1);
    expect(sample(afterExpiry, 'keel_messages_expired_total', { destination: e })).toBe(1);
    expect(sample(afterExpiry, 'keel_messages_dead_lettered_total', { destination: e })).toBe(0);

    // Every connection closed: the gauge goes back to 0, it does not vanish.
    for (const c of [...conns]) await closeConn(c);
    const end = await until('keel_connections', { protocol: 'native' }, 0);
    expect(sample(end, 'keel_connections', { protocol: 'native' })).toBe(0);
    expect(sample(end, 'keel_messages_redelivered_total', { destination: q })).toBe(1);
  });
});
