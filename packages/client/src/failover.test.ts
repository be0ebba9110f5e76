import {
  ConnectionError,
  FrameType,
  type SendFrame,
  type SubscribeFrame,
  TimeoutError,
  TransactionRolledBackError,
  type TxOutcomeFrame,
} from '@keel/protocol';
import { FakeBroker, FakeStore } from './__tests__/fake-broker';
import { type Connection, type ConnectionEvents, connect } from './connection';
import type { ReceivedMessage } from './received-message';

const brokers: FakeBroker[] = [];
const conns: Connection[] = [];

async function start(
  name: string,
  store: FakeStore,
  extra: Partial<Parameters<typeof FakeBroker.start>[0]> = {},
) {
  const b = await FakeBroker.start({ name, store, ...extra });
  brokers.push(b);
  return b;
}

async function failover(url: string, options: Parameters<typeof connect>[1] = {}): Promise<Connection> {
  const c = await connect(url, { heartbeatMs: 0, ...options });
  conns.push(c);
  return c;
}

function next<K extends keyof ConnectionEvents>(conn: Connection, event: K): Promise<ConnectionEvents[K][0]> {
  return new Promise((resolve) => conn.once(event, ((arg: ConnectionEvents[K][0]) => resolve(arg)) as never));
}

afterEach(async () => {
  for (const c of conns.splice(0)) await c.close();
  for (const b of brokers.splice(0)) await b.close();
});

describe('failover transport', () => {
  it('moves to the next broker when A dies: resends unreceipted sends with the same producerId/seq, resubscribes, emits interrupted/resumed', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false&initialReconnectDelay=10`);
    expect(conn.url).toBe(a.url);
    const attempts: { url: string; attempt: number }[] = [];
    conn.on('reconnect:attempt', (e) => attempts.push(e));

    const session = await conn.createSession({ ackMode: 'client' });
    const consumer = await session.createConsumer('queue://out', { prefetch: 7 });
    const producer = session.createProducer('queue://in');
    a.holdReceipts = true; // A stores the messages but dies before receipting them
    const sends = [1, 2, 3].map((i) => producer.send(`m${i}`));
    await a.waitFrame(() => a.framesOf(FrameType.Send).length === 3);
    expect(store.stored).toHaveLength(3);

    const interrupted = next(conn, 'interrupted');
    const resumed = next(conn, 'resumed');
    await a.kill();
    expect((await interrupted).url).toBe(a.url);
    expect(await resumed).toEqual({ url: b.url });
    expect(conn.url).toBe(b.url);
    expect(attempts[0]).toMatchObject({ url: b.url, attempt: 1 });

    const results = await Promise.all(sends);
    expect(results.map((r) => r.messageId)).toEqual(['1', '2', '3']);
    const resent = b.framesOf(FrameType.Send) as SendFrame[];
    const original = a.framesOf(FrameType.Send) as SendFrame[];
    expect(resent.map((f) => [f.message.producerId, f.message.producerSeq])).toEqual(
      original.map((f) => [f.message.producerId, f.message.producerSeq]),
    );
    // Duplicate detection kept every message single.
    expect(store.stored).toHaveLength(3);
    expect(b.depth('queue://in')).toBe(3);

    const sub = b.framesOf(FrameType.Subscribe)[0] as SubscribeFrame;
    expect(sub).toMatchObject({
      consumerId: consumer.id,
      destination: 'queue://out',
      prefetch: 7,
      channel: session.channel,
    });
    expect(b.framesOf(FrameType.SessionOpen)[0]).toMatchObject({
      channel: session.channel,
      ackMode: 'client',
    });

    // The consumer works on B.
    await session.createProducer('queue://out').send('after');
    const it = consumer[Symbol.asyncIterator]();
    expect(((await it.next()).value as ReceivedMessage).text()).toBe('after');
  });

  it('redelivers unacked messages and suppresses (and re-acks) redeliveries of messages already acked', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false`);
    const session = await conn.createSession({ ackMode: 'individual' });
    const p = session.createProducer('queue://work');
    await p.send('one');
    await p.send('two');
    const consumer = await session.createConsumer('queue://work');
    const it = consumer[Symbol.asyncIterator]();
    const one = (await it.next()).value as ReceivedMessage;
    const two = (await it.next()).value as ReceivedMessage;
    a.dropAcks = true; // the ack of `one` is lost with A
    const acking = one.ack(); // no receipt will come
    await a.waitFrame((f) => f.type === FrameType.Ack);

    const resumed = next(conn, 'resumed');
    await a.kill();
    await resumed;
    await acking; // an ack cut off by the drop resolves: the audit covers it
    // B redelivers both (nothing was acked in the store); the audit drops `one` and re-acks it.
    const again = (await it.next()).value as ReceivedMessage;
    expect(again.messageId).toBe(two.messageId);
    expect(again.redelivered).toBe(true);
    const reack = await b.waitFrame((f) => f.type === FrameType.Ack);
    expect(reack).toMatchObject({ messageIds: [one.messageId] });
    // An ack of the old delivery of `two` goes to B (the audit did not know it) and consumes it.
    await two.ack();
    await b.waitFrame(() => b.framesOf(FrameType.Ack).length === 2);
    expect((b.framesOf(FrameType.Ack)[1] as { messageIds: string[] }).messageIds).toEqual([two.messageId]);
    // …and acking the new delivery is dropped silently: the audit knows it.
    await again.ack();
    expect(b.framesOf(FrameType.Ack)).toHaveLength(2);
    expect(b.depth('queue://work')).toBe(0);
  });

  it('fails the commit of a transaction that was open across a failover, and the next one works', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false`);
    const tx = await conn.createSession({ transacted: true });
    const p = tx.createProducer('queue://t');
    await p.send('lost');
    const resumed = next(conn, 'resumed');
    await a.kill();
    await resumed;
    await p.send('also lost'); // goes into the new broker transaction, which the failed commit rolls back
    const err = await tx.commit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionRolledBackError);
    expect(err).toMatchObject({ code: 'TX_ROLLED_BACK', retryable: true });
    expect(b.framesOf(FrameType.TxRollback)).toHaveLength(1);
    expect(store.stored).toHaveLength(0);
    await p.send('kept');
    await tx.commit();
    expect(store.stored.map((e) => e.message.body.toString())).toEqual(['kept']);
  });

  it('resolves a commit whose answer was lost by asking the new master (TX_OUTCOME committed)', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false`);
    const tx = await conn.createSession({ transacted: true });
    await tx.createProducer('queue://t').send('x');
    a.dieOnCommit = 'after';
    await tx.commit();
    const q = (await b.waitFrame((f) => f.type === FrameType.TxOutcome)) as TxOutcomeFrame;
    const committed = (a.framesOf(FrameType.TxCommit)[0] as { txId: string }).txId;
    expect(q.txId).toBe(committed);
    expect(store.stored).toHaveLength(1);
    await tx.createProducer('queue://t').send('y');
    await tx.commit();
    expect(store.stored).toHaveLength(2);
  });

  it('rejects a commit the new master has no record of with TransactionRolledBackError', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false`);
    const tx = await conn.createSession({ transacted: true });
    await tx.createProducer('queue://t').send('x');
    a.dieOnCommit = 'before';
    await expect(tx.commit()).rejects.toBeInstanceOf(TransactionRolledBackError);
    expect(b.framesOf(FrameType.TxOutcome)).toHaveLength(1);
    expect(store.stored).toHaveLength(0);
  });

  it('skips a slave that answers NOT_MASTER and learns the cluster list (updateURIsSupported)', async () => {
    const store = new FakeStore();
    const slave = await start('slave', store, { role: 'slave' });
    const master = await start('master', store, { brokers: ['tcp://127.0.0.1:1', 'stomp://x:61613'] });
    const conn = await failover(`failover:(${slave.url},${master.url})?randomize=false`);
    expect(conn.url).toBe(master.url);
    expect(slave.framesOf(FrameType.Hello)).toHaveLength(1);
    expect(conn.knownBrokers).toEqual([slave.url, master.url, 'tcp://127.0.0.1:1']);
    master.broadcastBrokerInfo(['tcp://127.0.0.1:2']);
    const s = await conn.createSession(); // a round trip: BROKER_INFO was handled before
    await s.createProducer('queue://x').send('x');
    expect(conn.knownBrokers).toContain('tcp://127.0.0.1:2');
  });

  it('buffers sends while no broker is up and rejects them with TimeoutError after `timeout`', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const conn = await failover(
      `failover:(${a.url})?timeout=200&initialReconnectDelay=20&maxReconnectDelay=50`,
    );
    const session = await conn.createSession();
    const p = session.createProducer('queue://q');
    const interrupted = next(conn, 'interrupted');
    await a.kill();
    await interrupted;
    expect(conn.status).toBe('reconnecting');
    const started = Date.now();
    const err = await p.send('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as Error).message).toMatch(/within 200 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    await expect(conn.createSession()).rejects.toBeInstanceOf(TimeoutError);
    expect(conn.status).toBe('reconnecting');
  });

  it('sends buffered while disconnected go out when a broker comes back', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const port = a.port;
    const conn = await failover(
      `failover:(${a.url})?timeout=5000&initialReconnectDelay=20&maxReconnectDelay=40`,
    );
    const session = await conn.createSession();
    const p = session.createProducer('queue://q');
    const interrupted = next(conn, 'interrupted');
    await a.kill();
    await interrupted;
    const sending = [p.send('1'), p.send('2')];
    const resumed = next(conn, 'resumed');
    const again = await FakeBroker.start({ name: 'a2', store, port }).catch(() => null);
    // The OS may not give the same port back; in that case there is nothing to test here.
    if (again === null || again.port !== port) {
      if (again) brokers.push(again);
      await conn.close();
      for (const s of sending) await expect(s).rejects.toBeInstanceOf(ConnectionError);
      return;
    }
    brokers.push(again);
    await resumed;
    await Promise.all(sending);
    expect(store.stored.map((e) => e.message.body.toString())).toEqual(['1', '2']);
  });

  it('a send refused STORE_UNAVAILABLE (not fatal) is resent with the same producer id/seq and the resent flag; a tcp:// client sees the error', async () => {
    const a = await start('a', new FakeStore());
    let refusals = 2;
    a.errorFor = (f) =>
      f.type === FrameType.Send && refusals-- > 0
        ? { code: 'STORE_UNAVAILABLE', message: 'store commit failed', retryable: true }
        : undefined;
    const conn = await failover(`failover:(${a.url})?initialReconnectDelay=10`);
    const producer = (await conn.createSession()).createProducer('queue://in');
    expect((await producer.send('m1')).messageId).toBe('1');
    const sends = a.framesOf(FrameType.Send) as SendFrame[];
    expect(sends.map((f) => [f.message.producerSeq, f.resent === true])).toEqual([
      [1, false],
      [1, true],
      [1, true],
    ]);
    expect(new Set(sends.map((f) => f.message.producerId)).size).toBe(1);
    expect(a.depth('queue://in')).toBe(1);

    refusals = 1;
    const plain = await failover(a.url);
    const p2 = (await plain.createSession()).createProducer('queue://in');
    await expect(p2.send('m2')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
  });

  it('gives up after maxReconnectAttempts: everything pending rejects with ConnectionError and close is emitted', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const conn = await failover(
      `failover:(${a.url})?maxReconnectAttempts=2&initialReconnectDelay=5&timeout=-1`,
    );
    const session = await conn.createSession();
    const consumer = await session.createConsumer('queue://none');
    const iterating = consumer[Symbol.asyncIterator]().next();
    const attempts: number[] = [];
    conn.on('reconnect:attempt', (e) => attempts.push(e.attempt));
    const closed = next(conn, 'close');
    conn.on('error', () => {});
    a.holdReceipts = true;
    const sending = session.createProducer('queue://q').send('x');
    await a.waitFrame((f) => f.type === FrameType.Send);
    await a.kill();
    const event = await closed;
    expect(event.error).toBeInstanceOf(ConnectionError);
    expect(attempts).toEqual([1, 2, 3]);
    await expect(sending).rejects.toBeInstanceOf(ConnectionError);
    await expect(iterating).rejects.toBeInstanceOf(ConnectionError);
  });

  it('connect() fails with TimeoutError when no broker answers within `timeout`', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const url = a.url;
    await a.close();
    const started = Date.now();
    const err = await connect(`failover:(${url})?timeout=150&initialReconnectDelay=10`).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    const err2 = await connect(
      `failover:(${url})?startupMaxReconnectAttempts=1&initialReconnectDelay=1`,
    ).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(ConnectionError);
  });

  it('kill A mid-run: every message sent once, stored once and delivered once to an auto-ack listener', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false`);
    const producing = await conn.createSession();
    const consuming = await conn.createSession({ ackMode: 'auto' });
    const consumer = await consuming.createConsumer('queue://load', { prefetch: 20 });
    const total = 200;
    const got: string[] = [];
    let killed: Promise<void> | null = null;
    const all = new Promise<void>((resolve) => {
      consumer.onMessage((m) => {
        got.push(m.text());
        if (got.length === 50) killed = a.kill();
        if (new Set(got).size === total) resolve();
      });
    });
    const p = producing.createProducer('queue://load');
    for (let i = 0; i < total; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => p.send(`m${i + j}`)));
    }
    await all;
    await killed;
    expect(conn.url).toBe(b.url);
    expect(store.stored).toHaveLength(total);
    expect(new Set(got).size).toBe(total);
    expect(got).toHaveLength(total); // no duplicates handed to the application
  });

  it('restores durable subscriptions with the same client id', async () => {
    const store = new FakeStore();
    const a = await start('a', store);
    const b = await start('b', store);
    const conn = await failover(`failover:(${a.url},${b.url})?randomize=false`, { clientId: 'dur' });
    const session = await conn.createSession();
    const consumer = await session.createConsumer('topic://news', { durableName: 'd1', prefetch: 3 });
    const resumed = next(conn, 'resumed');
    await a.kill();
    await resumed;
    expect(b.framesOf(FrameType.Hello)[0]).toMatchObject({ clientId: 'dur' });
    expect(b.framesOf(FrameType.Subscribe)[0]).toMatchObject({
      durableName: 'd1',
      prefetch: 3,
      consumerId: consumer.id,
    });
    await session.createProducer('topic://news').send('hello');
    const it = consumer[Symbol.asyncIterator]();
    expect(((await it.next()).value as ReceivedMessage).text()).toBe('hello');
  });
});
