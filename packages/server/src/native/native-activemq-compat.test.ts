/**
 * Issue #18.1 on the native protocol: a SEND or SUBSCRIBE asking for an ActiveMQ feature Keel does
 * not implement gets an ERROR with code NOT_SUPPORTED naming it, and nothing is stored — through
 * @keel/client against a listener over the real PgStore (rules: packages/core/src/activemq-compat.ts).
 */
import { randomBytes } from 'node:crypto';
import { type Connection, connect } from '@keel/client';
import { Broker } from '@keel/core';
import { KeelError, type Properties } from '@keel/protocol';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { NativeListener } from './native-listener';

const db = useTestDatabase();

describe('native protocol: ActiveMQ features Keel lacks are refused, not misread', () => {
  let store: PgStore;
  let broker: Broker;
  let listener: NativeListener;
  let client: Connection;
  let sql: Client;

  beforeAll(async () => {
    store = new PgStore({
      connectionString: db.url,
      cluster: `compat-${randomBytes(3).toString('hex')}`,
      poolSize: 2,
    });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store });
    await broker.start();
    listener = new NativeListener({
      broker,
      host: '127.0.0.1',
      port: 0,
      heartbeatMs: 0,
      describe: () => ({
        broker: { name: 'node-1', cluster: 'test', role: 'master', epoch: 1, version: '0.1.0' },
        brokers: [],
      }),
    });
    const { port } = await listener.start();
    client = await connect(`tcp://127.0.0.1:${port}`, { heartbeatMs: 0 });
    sql = new Client({ connectionString: db.url });
    sql.on('error', () => {});
    await sql.connect();
  });

  afterAll(async () => {
    await sql.end();
    await client.close();
    await listener.stop();
    await broker.stop();
    await store.close();
  });

  async function refusal(p: Promise<unknown>): Promise<KeelError> {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    if (!KeelError.isInstance(err)) throw new Error(`expected a KeelError, got ${String(err)}`);
    return err;
  }

  const refusedSends: Array<[string, string, Properties, string]> = [
    ['destination options', 'queue://opts?consumer.exclusive=true', {}, 'opts?consumer.exclusive=true'],
    [
      'the statistics plugin',
      'queue://ActiveMQ.Statistics.Destination.orders',
      {},
      'ActiveMQ.Statistics.Destination.orders',
    ],
    [
      'an advisory topic',
      'topic://ActiveMQ.Advisory.Consumer.Queue.orders',
      {},
      'ActiveMQ.Advisory.Consumer.Queue.orders',
    ],
  ];

  it.each(refusedSends)(
    'refuses a SEND with %s and stores nothing',
    async (_case, destination, properties, naming) => {
      const session = await client.createSession();
      const err = await refusal(
        session.createProducer(destination).send('payload', { properties, persistent: true }),
      );
      expect(err.code).toBe('NOT_SUPPORTED');
      expect(err.message).toContain(naming);
      const stored = await sql.query('SELECT count(*)::int AS n FROM keel_messages');
      expect(stored.rows[0].n).toBe(0);
      const name = destination.slice(destination.indexOf('://') + 3);
      const rows = await sql.query('SELECT count(*)::int AS n FROM keel_destinations WHERE name = $1', [
        name,
      ]);
      expect(rows.rows[0].n).toBe(0);
      expect(broker.listQueues().map((q) => q.name)).not.toContain(name);
      await session.close();
    },
  );

  const refusedSubscribes: Array<[string, string, string]> = [
    ['a composite destination', 'queue://compA,compB', 'compA,compB'],
    ['destination options', 'queue://work?consumer.retroactive=true', 'consumer.retroactive'],
    ['the statistics plugin', 'queue://ActiveMQ.Statistics.Broker', 'ActiveMQ.Statistics.Broker'],
    [
      'an advisory topic Keel does not publish',
      'topic://ActiveMQ.Advisory.Connection',
      'ActiveMQ.Advisory.Connection',
    ],
  ];

  it.each(refusedSubscribes)('refuses a SUBSCRIBE to %s', async (_case, destination, naming) => {
    const session = await client.createSession();
    const err = await refusal(session.createConsumer(destination));
    expect(err.code).toBe('NOT_SUPPORTED');
    expect(err.message).toContain(naming);
    expect(broker.listConsumers()).toHaveLength(0);
    await session.close();
  });

  it('still takes consumer advisories (network bridges) and ordinary properties', async () => {
    const session = await client.createSession();
    const advisories = await session.createConsumer('topic://ActiveMQ.Advisory.Consumer.>');
    const r = await session
      .createProducer('queue://fine')
      .send('ok', { properties: { transformation: 'x' } });
    expect(r.messageId).toBeDefined();
    await advisories.close();
    await session.close();
  });
});
