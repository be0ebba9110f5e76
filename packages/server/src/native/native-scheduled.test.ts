/**
 * Issue #22.1 on the native protocol: AMQ_SCHEDULED_* as message properties (numbers, as a JMS
 * client sets them) through @keel/client against a listener over the real PgStore: the receipt
 * comes once the job is a row, the firing is a new message with scheduledJobId, an invalid value is
 * INVALID_ARGUMENT naming the property and nothing is stored.
 */
import { randomBytes } from 'node:crypto';
import { type Connection, connect } from '@keel/client';
import { Broker } from '@keel/core';
import { KeelError } from '@keel/protocol';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { NativeListener } from './native-listener';

const db = useTestDatabase();

describe('native protocol: scheduled delivery', () => {
  let store: PgStore;
  let broker: Broker;
  let listener: NativeListener;
  let client: Connection;
  let sql: Client;
  const cluster = `sched-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    store = new PgStore({ connectionString: db.url, cluster, poolSize: 2 });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, scheduler: { maxIdleMs: 100 } });
    await broker.start();
    await broker.scheduler.start();
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

  const jobs = async (): Promise<{ job_id: string }[]> =>
    (await sql.query('SELECT job_id FROM keel_schedules WHERE cluster = $1', [cluster])).rows;

  it('delays a send by AMQ_SCHEDULED_DELAY (a number property); the firing carries scheduledJobId', async () => {
    const session = await client.createSession();
    const consumer = await session.createConsumer('queue://native.later');
    const got = new Promise<{ id: string; props: Record<string, unknown>; at: number }>((resolve) =>
      consumer.on('message', (m) => resolve({ id: m.messageId, props: m.properties, at: Date.now() })),
    );
    const sentAt = Date.now();
    await session
      .createProducer('queue://native.later')
      .send('later', { persistent: true, properties: { AMQ_SCHEDULED_DELAY: 400 } });
    const rows = await jobs();
    expect(rows).toHaveLength(1);
    const m = await got;
    expect(m.at - sentAt).toBeGreaterThanOrEqual(390);
    expect(m.props).toEqual({ scheduledJobId: rows[0]!.job_id });
    expect(m.id).not.toBe(rows[0]!.job_id);
  });

  it('refuses AMQ_SCHEDULED_PERIOD -5 with INVALID_ARGUMENT naming it, storing nothing', async () => {
    const session = await client.createSession();
    const err = await session
      .createProducer('queue://native.bad')
      .send('x', { persistent: true, properties: { AMQ_SCHEDULED_PERIOD: -5, AMQ_SCHEDULED_REPEAT: 2 } })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(KeelError.isInstance(err) && err.code).toBe('INVALID_ARGUMENT');
    expect((err as Error).message).toContain('AMQ_SCHEDULED_PERIOD');
    // Nothing stored for it: no job and no message on its destination (the first test's job may
    // still be deleting its row after firing, so count by destination, not all jobs).
    const stored = await sql.query(
      `SELECT (SELECT count(*) FROM keel_schedules s WHERE s.cluster = $1 AND s.destination LIKE '%native.bad%')::int AS jobs`,
      [cluster],
    );
    expect(stored.rows[0].jobs).toBe(0);
  });
});
