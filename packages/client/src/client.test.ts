import {
  AuthError,
  ConnectionError,
  FrameType,
  type HelloFrame,
  InvalidArgumentError,
  type SendFrame,
  type SubscribeFrame,
  type TxBeginFrame,
} from '@keel/protocol';
import { FakeBroker } from './__tests__/fake-broker';
import { type Connection, connect } from './connection';
import type { ReceivedMessage } from './received-message';

let broker: FakeBroker;

/** The next 'close' event (events.once would reject on the 'error' emitted before it). */
function closeEvent(conn: Connection): Promise<{ error?: Error }> {
  return new Promise((resolve) => conn.once('close', resolve));
}
const open: Connection[] = [];

async function client(options: Parameters<typeof connect>[1] = {}): Promise<Connection> {
  const c = await connect(broker.url, options);
  open.push(c);
  return c;
}

beforeEach(async () => {
  broker = await FakeBroker.start({ name: 'a' });
});

afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
  await broker.close();
});

/** Resolve with the next `n` messages a listener receives. */
function collect(n: number, into: ReceivedMessage[] = []): { into: ReceivedMessage[]; done: Promise<void> } {
  let resolve!: () => void;
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  const start = into.length;
  return {
    into,
    done,
    push(m: ReceivedMessage) {
      into.push(m);
      if (into.length - start >= n) resolve();
    },
  } as never;
}

describe('client over tcp:// against a fake broker', () => {
  it('shakes hands: HELLO with credentials and heartbeat, WELCOME gives ids', async () => {
    const conn = await client({ clientId: 'app-1', username: 'u', password: 'p', heartbeatMs: 5000 });
    const hello = await broker.waitFrame<HelloFrame>((f) => f.type === FrameType.Hello);
    expect(hello).toMatchObject({
      clientId: 'app-1',
      username: 'u',
      password: 'p',
      heartbeatMs: 5000,
      protocolVersion: 2,
      minProtocolVersion: 1,
    });
    expect(conn.clientId).toBe('app-1');
    expect(conn.connectionId).toBe('a-conn-1');
    expect(conn.broker?.role).toBe('master');
    expect(conn.status).toBe('connected');
    expect(conn.url).toBe(broker.url);
  });

  it('fails to connect with the typed error of a refusing broker', async () => {
    await expect(connect(broker.url, { username: 'bad' })).rejects.toBeInstanceOf(AuthError);
  });

  it('fails to connect with ConnectionError when nothing listens', async () => {
    const port = broker.port;
    await broker.close();
    const err = await connect(`tcp://127.0.0.1:${port}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    broker = await FakeBroker.start({ name: 'a' });
  });

  it('rejects a malformed URL with InvalidArgumentError', async () => {
    await expect(connect('tcp://')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(connect('failover:(tcp://a:1)?randomize=maybe')).rejects.toThrow(/randomize/);
  });

  it('sends with a receipt: resolves once after the RECEIPT, with producerId and increasing producerSeq', async () => {
    const conn = await client();
    const session = await conn.createSession();
    const producer = session.createProducer('queue://orders');
    broker.holdReceipts = true;
    let settled = false;
    const first = producer.send('one', { properties: { k: 'v' }, correlationId: 'c1' }).then((r) => {
      settled = true;
      return r;
    });
    const frame = await broker.waitFrame<SendFrame>((f) => f.type === FrameType.Send);
    expect(settled).toBe(false);
    expect(frame.message).toMatchObject({
      destination: 'queue://orders',
      persistent: true,
      priority: 4,
      correlationId: 'c1',
      producerId: producer.producerId,
      producerSeq: 1,
      properties: { k: 'v' },
    });
    expect(frame.message.body.toString()).toBe('one');
    broker.releaseReceipts();
    expect(await first).toEqual({ messageId: '1' });
    broker.holdReceipts = false;
    await producer.send(Buffer.from('two'), { persistent: false, priority: 9 });
    const sends = broker.framesOf(FrameType.Send) as SendFrame[];
    expect(sends.map((s) => s.message.producerSeq)).toEqual([1, 2]);
    expect(sends[1]!.message).toMatchObject({ persistent: false, priority: 9 });
    expect(broker.depth('queue://orders')).toBe(2);
    await expect(producer.send('x', { priority: 10 })).rejects.toThrow(/priority/);
  });

  it('consumes within the prefetch window and gets more as it acknowledges (client mode, cumulative)', async () => {
    const conn = await client();
    const session = await conn.createSession({ ackMode: 'client' });
    const producer = session.createProducer({ type: 'queue', name: 'work' });
    for (let i = 1; i <= 5; i++) await producer.send(`m${i}`);
    const consumer = await session.createConsumer('queue://work', { prefetch: 2 });
    const sub = await broker.waitFrame<SubscribeFrame>((f) => f.type === FrameType.Subscribe);
    expect(sub).toMatchObject({ destination: 'queue://work', prefetch: 2, consumerId: consumer.id });
    const it = consumer[Symbol.asyncIterator]();
    const a = (await it.next()).value as ReceivedMessage;
    const b = (await it.next()).value as ReceivedMessage;
    expect([a.text(), b.text()]).toEqual(['m1', 'm2']);
    // The window is full: the broker holds the rest until an ack gives credit back.
    expect(broker.depth('queue://work')).toBe(3);
    await b.ack(); // cumulative: a and b
    const ack = await broker.waitFrame((f) => f.type === FrameType.Ack);
    expect(ack).toMatchObject({ messageIds: [b.messageId], cumulative: true });
    const c = (await it.next()).value as ReceivedMessage;
    const d = (await it.next()).value as ReceivedMessage;
    expect([c.text(), d.text()]).toEqual(['m3', 'm4']);
    expect(broker.depth('queue://work')).toBe(1);
    await consumer.close();
    expect((await it.next()).done).toBe(true);
  });

  it('an iterator yields no buffered message once the connection is closing (its ack could not go out)', async () => {
    const conn = await client();
    const session = await conn.createSession({ ackMode: 'client' });
    const producer = session.createProducer('queue://closing');
    for (let i = 1; i <= 3; i++) await producer.send(`m${i}`);
    const consumer = await session.createConsumer('queue://closing', { prefetch: 10 });
    const it = consumer[Symbol.asyncIterator]();
    expect(((await it.next()).value as ReceivedMessage).text()).toBe('m1');
    const buffered = () => (consumer as unknown as { buffer: ReceivedMessage[] }).buffer.length;
    for (let i = 0; i < 500 && buffered() < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(buffered()).toBe(2); // m2 and m3 arrived and wait in the consumer
    const closing = conn.close();
    expect((await it.next()).done).toBe(true);
    await closing;
  });

  it('acknowledges by itself in auto mode after the listener returns', async () => {
    const conn = await client();
    const session = await conn.createSession({ ackMode: 'auto' });
    const producer = session.createProducer('queue://auto');
    for (let i = 0; i < 10; i++) await producer.send(`m${i}`);
    const consumer = await session.createConsumer('queue://auto', { prefetch: 4 });
    const got = collect(10);
    consumer.onMessage((m) => (got as unknown as { push(m: ReceivedMessage): void }).push(m));
    await got.done;
    expect(got.into.map((m) => m.text())).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
    await broker.waitFrame(() => {
      const acked = (broker.framesOf(FrameType.Ack) as { messageIds: string[] }[]).flatMap(
        (f) => f.messageIds,
      );
      return acked.length === 10;
    });
    const acked = (broker.framesOf(FrameType.Ack) as { messageIds: string[] }[]).flatMap((f) => f.messageIds);
    expect(acked).toEqual(got.into.map((m) => m.messageId));
  });

  it('individual acks and nack: a nacked message comes again with the redelivered flag', async () => {
    const conn = await client();
    const session = await conn.createSession({ ackMode: 'individual' });
    const producer = session.createProducer('queue://n');
    await producer.send('x');
    await producer.send('y');
    const consumer = await session.createConsumer('queue://n');
    const it = consumer[Symbol.asyncIterator]();
    const x = (await it.next()).value as ReceivedMessage;
    const y = (await it.next()).value as ReceivedMessage;
    expect(x.redelivered).toBe(false);
    await y.ack();
    expect(await broker.waitFrame((f) => f.type === FrameType.Ack)).toMatchObject({
      messageIds: [y.messageId],
    });
    await x.nack();
    const again = (await it.next()).value as ReceivedMessage;
    expect(again.messageId).toBe(x.messageId);
    expect(again.redelivered).toBe(true);
    expect(again.deliveryCount).toBe(1);
  });

  it('sendAcksAsync: individual acks made together go one-way in one ACK frame, without a receipt', async () => {
    const conn = await client({ sendAcksAsync: true });
    const session = await conn.createSession({ ackMode: 'individual' });
    const producer = session.createProducer('queue://async-acks');
    await producer.send('a');
    await producer.send('b');
    const consumer = await session.createConsumer('queue://async-acks');
    const it = consumer[Symbol.asyncIterator]();
    const a = (await it.next()).value as ReceivedMessage;
    const b = (await it.next()).value as ReceivedMessage;
    await Promise.all([a.ack(), b.ack()]);
    const ack = await broker.waitFrame((f) => f.type === FrameType.Ack);
    expect(ack).toMatchObject({ messageIds: [a.messageId, b.messageId] });
    expect((ack as { receiptId?: string }).receiptId).toBeUndefined();
  });

  it('transactions: commit publishes, rollback discards, consumed messages come back after rollback', async () => {
    const conn = await client();
    const tx = await conn.createSession({ transacted: true });
    const begin = await broker.waitFrame<TxBeginFrame>((f) => f.type === FrameType.TxBegin);
    expect(begin.txId.startsWith(`${conn.connectionId}-`)).toBe(true);
    const p = tx.createProducer('queue://t');
    await p.send('a');
    expect(broker.depth('queue://t')).toBe(0);
    await tx.commit();
    expect(broker.depth('queue://t')).toBe(1);
    await p.send('b');
    await tx.rollback();
    expect(broker.depth('queue://t')).toBe(1);
    const txIds = (broker.framesOf(FrameType.TxBegin) as { txId: string }[]).map((f) => f.txId);
    expect(new Set(txIds).size).toBe(3);

    const consumer = await tx.createConsumer('queue://t');
    const it = consumer[Symbol.asyncIterator]();
    const m = (await it.next()).value as ReceivedMessage;
    expect(m.text()).toBe('a');
    await tx.rollback();
    const again = (await it.next()).value as ReceivedMessage;
    expect(again.messageId).toBe(m.messageId);
    expect(again.redelivered).toBe(true);
    await tx.commit(); // moving past `again` acked it inside the transaction
    const acks = broker.framesOf(FrameType.Ack) as { txId?: string; messageIds: string[] }[];
    expect(acks.at(-1)).toMatchObject({ messageIds: [m.messageId] });
    expect(acks.at(-1)!.txId).toBeDefined();
    await expect(conn.createSession().then((s) => s.commit())).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('turns ERROR frames into typed errors', async () => {
    broker.errorFor = (f) => {
      if (f.type === FrameType.Send && f.message.destination === 'queue://forbidden') {
        return { code: 'NOT_AUTHORIZED', message: 'no write access' };
      }
      if (f.type === FrameType.Subscribe && f.destination === 'queue://missing') {
        return { code: 'UNKNOWN_DESTINATION', message: 'no such queue' };
      }
      return undefined;
    };
    const conn = await client();
    const session = await conn.createSession();
    const err = await session
      .createProducer('queue://forbidden')
      .send('x')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect(err).toMatchObject({ code: 'NOT_AUTHORIZED' });
    const err2 = await session.createConsumer('queue://missing').catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(InvalidArgumentError);
    expect(err2).toMatchObject({ code: 'UNKNOWN_DESTINATION' });
    // The connection is still usable.
    await session.createProducer('queue://fine').send('ok');
    await expect(conn.removeDurable('nope')).rejects.toMatchObject({ code: 'UNKNOWN_DESTINATION' });
  });

  it('rejects everything pending with ConnectionError when the connection drops (no failover)', async () => {
    const conn = await client();
    const session = await conn.createSession({ transacted: true });
    const plain = await conn.createSession();
    const consumer = await plain.createConsumer('queue://empty');
    const iterating = consumer[Symbol.asyncIterator]().next();
    broker.holdReceipts = true;
    const sends = [1, 2, 3].map((i) => plain.createProducer('queue://q').send(`m${i}`));
    await broker.waitFrame(() => broker.framesOf(FrameType.Send).length === 3);
    const closed = closeEvent(conn);
    const errors: Error[] = [];
    conn.on('error', (e) => errors.push(e));
    await broker.kill();
    const event = await closed;
    expect(event.error).toBeInstanceOf(ConnectionError);
    for (const s of sends) await expect(s).rejects.toBeInstanceOf(ConnectionError);
    await expect(iterating).rejects.toBeInstanceOf(ConnectionError);
    await expect(session.commit()).rejects.toBeDefined();
    await expect(conn.createSession()).rejects.toBeInstanceOf(ConnectionError);
    expect(conn.status).toBe('closed');
    expect(errors[0]).toBeInstanceOf(ConnectionError);
  });

  it('takes a silent broker for dead after 3 x heartbeatMs', async () => {
    await broker.close();
    broker = await FakeBroker.start({ name: 'a', silent: true });
    const started = Date.now();
    const conn = await client({ heartbeatMs: 100 });
    const event = await closeEvent(conn);
    expect(event.error).toMatchObject({ code: 'HEARTBEAT_TIMEOUT' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('request/reply over a temporary queue with a correlationId', async () => {
    const conn = await client();
    const server = await conn.createSession();
    const replies = server.createProducer('queue://unused');
    void replies;
    const service = await server.createConsumer('queue://svc');
    service.onMessage(async (m) => {
      const p = server.createProducer(m.replyTo!);
      await p.send(`echo:${m.text()}`, { correlationId: m.correlationId });
    });
    const reply = await conn.request('queue://svc', 'hi', { timeoutMs: 5000 });
    expect(reply.text()).toBe('echo:hi');
    const req = (broker.framesOf(FrameType.Send) as SendFrame[]).find(
      (f) => f.message.destination === 'queue://svc',
    )!;
    expect(req.message.replyTo).toMatch(/^temp-queue:\/\//);
    expect(reply.correlationId).toBe(req.message.correlationId);
    await expect(conn.request('queue://nobody', 'hi', { timeoutMs: 100 })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
  });

  it('durable subscriptions carry their name; removeDurable removes it', async () => {
    const conn = await client({ clientId: 'durable-client' });
    const session = await conn.createSession();
    const consumer = await session.createConsumer('topic://prices', { durableName: 'sub1', noLocal: true });
    expect(await broker.waitFrame((f) => f.type === FrameType.Subscribe)).toMatchObject({
      destination: 'topic://prices',
      durableName: 'sub1',
      noLocal: true,
    });
    await consumer.close();
    await conn.removeDurable('sub1');
    expect(broker.store.durables.size).toBe(0);
  });
});
