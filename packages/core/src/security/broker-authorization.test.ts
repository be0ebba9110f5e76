/**
 * The broker's authorization hooks (Broker.authorize / authorizeCreate) over the memory store:
 * send needs write, consume / browse / durable subscriptions need read, creating a destination
 * needs admin, temporary destinations follow the temp entry, and a refusal stores nothing. The
 * same over real sockets, STOMP and native: test/e2e/authorization.test.ts.
 */
import { KeelError, type Message } from '@keel/protocol';
import { Broker } from '../broker';
import type { ConnectionState } from '../connection';
import { MemoryDatabase, MemoryStore } from '../store/memory-store';
import { AuthorizationMap } from './authorization-map';

function msg(destination: string, text = 'x'): Message {
  return {
    destination,
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(text),
  };
}

const GROUPS: Record<string, string[]> = {
  ops: ['admins'],
  prod: ['producers'],
  cons: ['consumers'],
};

const map = new AuthorizationMap({
  entries: [
    { queue: '>', read: 'admins', write: 'admins', admin: 'admins' },
    { topic: '>', read: 'admins', write: 'admins', admin: 'admins' },
    { queue: 'orders.>', read: 'consumers', write: 'producers' },
    { topic: 'prices.>', read: 'consumers', write: 'producers', admin: 'producers' },
  ],
  tempDestinations: { read: 'consumers,producers', write: 'producers,consumers', admin: 'consumers' },
  groupsOf: (u) => GROUPS[u] ?? [],
});

async function refusal(p: Promise<unknown>): Promise<KeelError> {
  try {
    await p;
  } catch (err) {
    if (KeelError.isInstance(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('broker authorization', () => {
  let broker: Broker;
  let store: MemoryStore;
  const conns: Record<string, ConnectionState> = {};

  async function start(authorization: AuthorizationMap | null): Promise<void> {
    store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' });
    await store.open();
    await store.takeOver('node-1', 'test');
    broker = new Broker({ nodeName: 'node-1', store, authorization });
    await broker.start();
    for (const u of Object.keys(GROUPS))
      conns[u] = broker.openConnection({ protocol: 'native', clientId: `c-${u}`, username: u });
  }

  afterEach(async () => {
    await broker?.stop();
    await store?.close();
  });

  const sub = (conn: ConnectionState, destination: string, extra: Record<string, unknown> = {}) =>
    broker.subscribe(
      conn,
      { consumerId: `s${Math.random()}`, destination, prefetch: 10, ...extra },
      () => {},
    );

  it('without an authorization map every connection may do everything (as before)', async () => {
    await start(null);
    const anon = broker.openConnection({ protocol: 'stomp' });
    await broker.send(anon, msg('queue://anything'));
    await sub(anon, 'queue://anything');
    expect(broker.getQueue('anything')?.enqueued).toBe(1);
  });

  it('creating a destination on first use needs admin; an existing one needs only write', async () => {
    await start(map);
    const err = await refusal(broker.send(conns.prod!, msg('queue://orders.eu')));
    expect(err.code).toBe('NOT_AUTHORIZED');
    expect(err.message).toBe(
      'user prod is not authorized to create queue://orders.eu: the admin right is missing',
    );
    expect(broker.getQueue('orders.eu')).toBeNull();
    await sub(conns.ops!, 'queue://orders.eu');
    await broker.send(conns.prod!, msg('queue://orders.eu'));
    expect(broker.getQueue('orders.eu')?.enqueued).toBe(1);
  });

  it('send needs write: a refused send stores nothing, in or out of a transaction', async () => {
    await start(map);
    await sub(conns.ops!, 'queue://orders.eu', { prefetch: 0 });
    const err = await refusal(broker.send(conns.cons!, msg('queue://orders.eu')));
    expect(err.message).toMatch(
      /user cons is not authorized to write to queue:\/\/orders\.eu: the write right/,
    );
    broker.begin(conns.cons!, 'tx1');
    await refusal(broker.send(conns.cons!, msg('queue://orders.eu'), 'tx1'));
    await broker.commit(conns.cons!, 'tx1');
    expect(broker.getQueue('orders.eu')?.enqueued).toBe(0);
    expect(broker.getQueue('orders.eu')?.depth).toBe(0);
  });

  it('consume, browse and durable subscriptions need read', async () => {
    await start(map);
    await broker.send(conns.ops!, msg('queue://orders.eu'));
    expect((await refusal(sub(conns.prod!, 'queue://orders.eu'))).message).toMatch(
      /read from queue:\/\/orders\.eu: the read right/,
    );
    expect((await refusal(sub(conns.prod!, 'queue://orders.eu', { browse: true }))).code).toBe(
      'NOT_AUTHORIZED',
    );
    await sub(conns.cons!, 'queue://orders.eu', { browse: true });
    await sub(conns.cons!, 'queue://orders.eu');
    await broker.send(conns.prod!, msg('topic://prices.eur'));
    // prod may create prices.* (admin) but not read it; cons may read it once it exists.
    expect((await refusal(sub(conns.prod!, 'topic://prices.usd', { durableName: 'd1' }))).message).toMatch(
      /read from topic:\/\/prices\.usd/,
    );
    await sub(conns.cons!, 'topic://prices.eur', { durableName: 'd1' });
    expect(broker.listDurables().map((d) => d.name)).toEqual(['d1']);
  });

  it('a wildcard consumer needs an entry covering every name it matches', async () => {
    await start(map);
    await sub(conns.cons!, 'queue://orders.>');
    expect((await refusal(sub(conns.cons!, 'queue://>'))).message).toMatch(/covering every name/);
  });

  it('temporary destinations follow the temp entry', async () => {
    await start(map);
    await sub(conns.cons!, 'temp-queue://ID:cons:1');
    await broker.send(conns.prod!, msg('temp-queue://ID:cons:1'));
    expect((await refusal(sub(conns.prod!, 'temp-queue://ID:prod:1'))).message).toMatch(/create temp-queue/);
    expect((await refusal(sub(conns.ops!, 'temp-queue://ID:cons:1'))).message).toMatch(
      /read from temp-queue/,
    );
  });

  it("the broker's own connections and a bridge's local connection without a user are not checked", async () => {
    await start(map);
    const internal = broker.openConnection({ protocol: 'internal' });
    await broker.send(internal, msg('queue://free.1'));
    const bridge = broker.openConnection({ protocol: 'network', clientId: 'network:x' });
    await broker.send(bridge, msg('queue://free.2'));
    const bridgeAsUser = broker.openConnection({
      protocol: 'network',
      clientId: 'network:y',
      username: 'cons',
    });
    expect((await refusal(broker.send(bridgeAsUser, msg('queue://free.3')))).code).toBe('NOT_AUTHORIZED');
    const anon = broker.openConnection({ protocol: 'stomp' });
    expect((await refusal(broker.send(anon, msg('queue://free.1')))).message).toMatch(/anonymous/);
  });
});
