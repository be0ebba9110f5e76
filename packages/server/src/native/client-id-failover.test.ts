/**
 * Issue #21.5 through @keel/client's failover transport against a real native listener: a second
 * connection with a client id that is connected is refused with INVALID_CLIENT_ID, and the failover
 * transport gives that error to the application instead of reconnecting forever (ActiveMQ does not
 * retry an InvalidClientIDException); with allowLinkStealing the older connection is closed with it
 * and does not reconnect to steal the id back.
 */
import { type Connection, connect } from '@keel/client';
import { Broker, MemoryDatabase, MemoryStore } from '@keel/core';
import { KeelError } from '@keel/protocol';
import { NativeListener } from './native-listener';

const DESCRIBE = () => ({
  broker: { name: 'node-1', cluster: 'test', role: 'master' as const, epoch: 1, version: '0.1.0' },
  brokers: [],
});

describe('client ids through the failover transport', () => {
  let store: MemoryStore;
  let broker: Broker;
  let listener: NativeListener;
  const conns: Connection[] = [];

  async function start(allowLinkStealing: boolean): Promise<string> {
    store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store });
    await broker.start();
    listener = new NativeListener({
      broker,
      host: '127.0.0.1',
      port: 0,
      heartbeatMs: 0,
      allowLinkStealing,
      describe: DESCRIBE,
    });
    const { port } = await listener.start();
    return `failover:(tcp://127.0.0.1:${port})?initialReconnectDelay=10&maxReconnectDelay=20`;
  }

  afterEach(async () => {
    for (const c of conns.splice(0)) await c.close().catch(() => {});
    await listener.stop();
    await broker.stop();
    await store.close();
  });

  it('refuses a second connection with INVALID_CLIENT_ID and does not retry it', async () => {
    const url = await start(false);
    const first = await connect(url, { heartbeatMs: 0, clientId: 'app-1' });
    conns.push(first);
    const attempts: number[] = [];
    const err = await connect(url, { heartbeatMs: 0, clientId: 'app-1' }).then(
      (c) => {
        conns.push(c);
        c.on('reconnect:attempt', (e) => attempts.push(e.attempt));
        return null;
      },
      (e: unknown) => e,
    );
    expect(KeelError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ code: 'INVALID_CLIENT_ID' });
    expect(attempts).toEqual([]);
    // The first connection still works.
    const session = await first.createSession();
    await session.createProducer('queue://ok').send('still here');
  });

  it('with allowLinkStealing the older connection fails with INVALID_CLIENT_ID and stays closed', async () => {
    const url = await start(true);
    const older = await connect(url, { heartbeatMs: 0, clientId: 'app-2' });
    conns.push(older);
    let reconnects = 0;
    older.on('reconnect:attempt', () => (reconnects += 1));
    const failed = new Promise<unknown>((resolve) => older.once('error', resolve));
    const newer = await connect(url, { heartbeatMs: 0, clientId: 'app-2' });
    conns.push(newer);
    const err = await failed;
    expect(err).toMatchObject({ code: 'INVALID_CLIENT_ID' });
    expect(reconnects).toBe(0);
    const session = await newer.createSession();
    await session.createProducer('queue://ok').send('the newer one has the id');
    expect(broker.listConnections().filter((c) => c.clientId === 'app-2')).toHaveLength(1);
  });
});
