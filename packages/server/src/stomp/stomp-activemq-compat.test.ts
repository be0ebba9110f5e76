/**
 * Issue #18.1: what ActiveMQ gives a meaning to and Keel does not implement is refused with an
 * ERROR (code NOT_SUPPORTED) that names it, and nothing is stored — raw STOMP frames against a
 * broker over the real PgStore (rules: packages/core/src/activemq-compat.ts).
 */
import { randomBytes } from 'node:crypto';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { headersOf, RawStomp, type StompFixture, startStomp } from './__tests__/stomp-test-kit';

const db = useTestDatabase();

describe('STOMP: ActiveMQ features Keel lacks are refused, not misread', () => {
  let fx: StompFixture;
  let store: PgStore;
  let sql: Client;
  const raws: RawStomp[] = [];

  beforeAll(async () => {
    store = new PgStore({
      connectionString: db.url,
      cluster: `compat-${randomBytes(3).toString('hex')}`,
      poolSize: 2,
    });
    await store.open();
    await store.takeOver('node-1', 'test');
    fx = await startStomp({}, { store });
    sql = new Client({ connectionString: db.url });
    sql.on('error', () => {});
    await sql.connect();
  });

  afterEach(() => {
    for (const r of raws.splice(0)) r.destroy();
  });

  afterAll(async () => {
    await sql.end();
    await fx.close();
    await store.close();
  });

  async function connect(): Promise<RawStomp> {
    const r = await RawStomp.connect(fx.port);
    raws.push(r);
    return r;
  }

  async function storedMessages(): Promise<number> {
    return (await sql.query('SELECT count(*)::int AS n FROM keel_messages')).rows[0].n;
  }

  async function destinationRows(name: string): Promise<number> {
    return (await sql.query('SELECT count(*)::int AS n FROM keel_destinations WHERE name = $1', [name]))
      .rows[0].n;
  }

  /** The server's answer to `command` with a receipt: the ERROR (checked) that refuses it. */
  async function expectRefused(
    r: RawStomp,
    command: 'SEND' | 'SUBSCRIBE',
    headers: Record<string, string>,
    naming: string,
  ): Promise<void> {
    r.send(command, { ...headers, receipt: 'r1' }, command === 'SEND' ? 'payload' : undefined);
    const f = await r.frame();
    expect(f.command).toBe('ERROR');
    const h = headersOf(f);
    expect(h.code).toBe('NOT_SUPPORTED');
    expect(h['receipt-id']).toBe('r1');
    expect(h.message).toContain(naming);
    await r.closed; // STOMP 1.2 "ERROR": the server closes the connection after it
  }

  const refusedSends: Array<[string, Record<string, string>, string, string]> = [
    // [case, SEND headers, what the ERROR names, the destination name that must not be created]
    [
      'destination options',
      { destination: '/queue/opts?consumer.exclusive=true' },
      'opts?consumer.exclusive=true',
      'opts?consumer.exclusive=true',
    ],
    [
      'the statistics plugin (destination)',
      { destination: '/queue/ActiveMQ.Statistics.Destination.orders' },
      'ActiveMQ.Statistics.Destination.orders',
      'ActiveMQ.Statistics.Destination.orders',
    ],
    [
      'the statistics plugin (broker)',
      { destination: '/queue/ActiveMQ.Statistics.Broker' },
      'ActiveMQ.Statistics.Broker',
      'ActiveMQ.Statistics.Broker',
    ],
    [
      'the statistics plugin (subscription)',
      { destination: '/queue/ActiveMQ.Statistics.Subscription' },
      'ActiveMQ.Statistics.Subscription',
      'ActiveMQ.Statistics.Subscription',
    ],
    [
      'an advisory topic',
      { destination: '/topic/ActiveMQ.Advisory.Connection' },
      'ActiveMQ.Advisory.Connection',
      'ActiveMQ.Advisory.Connection',
    ],
    [
      'a transformation',
      { destination: '/queue/xform', transformation: 'jms-map-json' },
      'transformation',
      'xform',
    ],
  ];

  it.each(refusedSends)('refuses a SEND with %s and stores nothing', async (_case, headers, naming, name) => {
    const r = await connect();
    await expectRefused(r, 'SEND', { ...headers, persistent: 'true' }, naming);
    expect(await storedMessages()).toBe(0);
    expect(await destinationRows(name)).toBe(0);
    expect(fx.broker.listQueues().map((q) => q.name)).not.toContain(name);
  });

  const refusedSubscribes: Array<[string, Record<string, string>, string]> = [
    [
      'activemq.retroactive:true',
      { destination: '/topic/news', 'activemq.retroactive': 'true' },
      'activemq.retroactive',
    ],
    [
      'activemq.maximumPendingMessageLimit',
      { destination: '/topic/news', 'activemq.maximumPendingMessageLimit': '100' },
      'activemq.maximumPendingMessageLimit',
    ],
    ['a composite destination', { destination: '/queue/compA,/queue/compB' }, 'compA,/queue/compB'],
    ['destination options', { destination: '/queue/work?consumer.prefetchSize=1' }, 'consumer.prefetchSize'],
    [
      'the statistics plugin',
      { destination: '/queue/ActiveMQ.Statistics.Broker' },
      'ActiveMQ.Statistics.Broker',
    ],
    [
      'an advisory topic Keel does not publish',
      { destination: '/topic/ActiveMQ.Advisory.Producer.Queue.work' },
      'ActiveMQ.Advisory.Producer',
    ],
  ];

  it.each(refusedSubscribes)(
    'refuses a SUBSCRIBE with %s and subscribes nothing',
    async (_case, headers, naming) => {
      const r = await connect();
      await expectRefused(r, 'SUBSCRIBE', { id: 's1', ack: 'client-individual', ...headers }, naming);
      expect(fx.broker.listConsumers()).toHaveLength(0);
      expect(fx.broker.listQueues().map((q) => q.name)).not.toContain('work');
    },
  );

  it('still takes what is supported or ignored on purpose', async () => {
    const r = await connect();
    r.send(
      'SUBSCRIBE',
      {
        id: 's1',
        destination: '/queue/fine',
        ack: 'client-individual',
        'activemq.dispatchAsync': 'true',
        'activemq.exclusive': 'true',
        'activemq.prefetchSize': '10',
        'activemq.priority': '5',
        receipt: 'sub',
      },
      undefined,
    );
    expect(headersOf(await r.frame())['receipt-id']).toBe('sub');
    r.send(
      'SEND',
      { destination: '/queue/fine', persistent: 'true', 'amq-msg-type': 'text', receipt: 's' },
      'ok',
    );
    const frames = [await r.frame(), await r.frame()];
    expect(frames.map((f) => f.command).sort()).toEqual(['MESSAGE', 'RECEIPT']);
    const m = frames.find((f) => f.command === 'MESSAGE')!;
    expect(m.body.toString()).toBe('ok');
    r.send('ACK', { id: headersOf(m).ack!, receipt: 'a' });
    expect(headersOf(await r.frame())['receipt-id']).toBe('a');
  });
});
