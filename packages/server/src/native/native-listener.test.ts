import { connect, type Socket } from 'node:net';
import { Broker, MemoryDatabase, MemoryStore, type Store } from '@keel/core';
import {
  type BrokerDescription,
  COMPACT_HEADER_FLAG,
  type DeliveredMessage,
  type ErrorFrame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  type HelloFrame,
  type Message,
  type MessageFrame,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  type ReceiptFrame,
  type WelcomeFrame,
} from '@keel/protocol';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { NativeListener, type NativeListenerOptions } from './native-listener';

const DESCRIPTION: BrokerDescription = {
  name: 'node-1',
  cluster: 'test',
  role: 'master',
  epoch: 1,
  version: '0.1.0',
};
const BROKERS = ['tcp://127.0.0.1:61616'];

/** A raw native client built from the codec only (not the client library). */
class RawClient {
  readonly frames: Frame[] = [];
  private readonly taken = new Set<Frame>();
  private readonly decoder = new FrameDecoder({ maxFrameSize: 64 * 1024 * 1024 });
  private waiters: (() => void)[] = [];
  decodeError: Error | null = null;
  closed = false;
  readonly closedPromise: Promise<void>;
  private receiptCounter = 0;

  /** Frames that came with a compact header (protocol version 2). */
  compactFrames = 0;
  /** Send SEND/ACK with compact headers (after a version 2 handshake). */
  compact = false;

  private constructor(readonly socket: Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      try {
        this.countCompact(chunk);
        for (const f of this.decoder.push(chunk)) this.frames.push(f);
      } catch (err) {
        this.decodeError = err as Error;
      }
      this.wake();
    });
    this.closedPromise = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Protocol header + HELLO; resolves with WELCOME (or the ERROR that refused us). */
  static async open(port: number, hello: Partial<HelloFrame> = {}): Promise<RawClient> {
    const c = await RawClient.connect(port);
    const welcome = await c.handshake(hello);
    if (welcome.type !== FrameType.Welcome) throw new Error(`handshake refused: ${JSON.stringify(welcome)}`);
    return c;
  }

  async handshake(hello: Partial<HelloFrame> = {}): Promise<WelcomeFrame | ErrorFrame> {
    this.socket.write(PROTOCOL_HEADER);
    this.send({
      type: FrameType.Hello,
      channel: 0,
      protocolVersion: PROTOCOL_VERSION,
      heartbeatMs: 0,
      ...hello,
    });
    return (await this.take((f) => f.type === FrameType.Welcome || f.type === FrameType.Error)) as
      | WelcomeFrame
      | ErrorFrame;
  }

  send(frame: Frame): void {
    this.socket.write(encodeFrame(frame, { compact: this.compact }));
  }

  /** Whole frames of a chunk whose headerLength has the compact flag (the tests' chunks hold whole frames). */
  private countCompact(chunk: Buffer): void {
    let at = 0;
    while (chunk.length - at >= 11) {
      if (chunk.readUInt32BE(at + 7) >= COMPACT_HEADER_FLAG) this.compactFrames += 1;
      at += 7 + chunk.readUInt32BE(at + 3) + 1;
    }
  }

  nextReceiptId(): string {
    this.receiptCounter += 1;
    return `r${this.receiptCounter}`;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The first frame not taken yet that matches; waits for it (bounded). */
  take(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`timed out; frames so far: ${this.frames.map((f) => FrameType[f.type]).join(',')}`),
          ),
        timeoutMs,
      );
      const check = (): void => {
        const f = this.frames.find((x) => !this.taken.has(x) && pred(x));
        if (f) {
          this.taken.add(f);
          clearTimeout(timer);
          resolve(f);
        } else if (this.closed) {
          clearTimeout(timer);
          reject(new Error('connection closed while waiting for a frame'));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** Waits for the frame that answers `receiptId` (RECEIPT, ERROR, RESPONSE or TxOutcome). */
  answer(receiptId: string): Promise<Frame> {
    return this.take((f) => 'receiptId' in f && f.receiptId === receiptId && f.type !== FrameType.Send);
  }

  async request(frame: Frame & { receiptId?: string }): Promise<Frame> {
    const receiptId = this.nextReceiptId();
    this.send({ ...frame, receiptId } as Frame);
    return this.answer(receiptId);
  }

  async expectReceipt(frame: Frame): Promise<void> {
    const f = await this.request(frame);
    if (f.type !== FrameType.Receipt) throw new Error(`expected RECEIPT, got ${JSON.stringify(f)}`);
  }

  /** A REQUEST ping round trip: everything the broker wrote before it has arrived. */
  async ping(channel = 0): Promise<void> {
    const receiptId = this.nextReceiptId();
    this.send({ type: FrameType.Request, channel, receiptId, op: 'ping', args: {} });
    const f = await this.answer(receiptId);
    if (f.type !== FrameType.Response) throw new Error(`expected RESPONSE, got ${JSON.stringify(f)}`);
  }

  messages(consumerId?: string): DeliveredMessage[] {
    return this.frames
      .filter(
        (f): f is MessageFrame =>
          f.type === FrameType.Message && (consumerId === undefined || f.consumerId === consumerId),
      )
      .map((f) => f.message);
  }

  async waitMessages(n: number, consumerId?: string): Promise<DeliveredMessage[]> {
    for (let i = 0; i < 500 && this.messages(consumerId).length < n; i++) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () =>
            reject(new Error(`timed out waiting for ${n} messages, got ${this.messages(consumerId).length}`)),
          5000,
        );
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
        if (this.closed) reject(new Error('connection closed'));
      });
    }
    return this.messages(consumerId);
  }

  fatalError(): Promise<ErrorFrame> {
    return this.take((f) => f.type === FrameType.Error && f.fatal) as Promise<ErrorFrame>;
  }

  async openSession(channel: number, transacted = false): Promise<void> {
    await this.expectReceipt({ type: FrameType.SessionOpen, channel, transacted, ackMode: 'individual' });
  }

  async subscribe(channel: number, consumerId: string, destination: string, prefetch: number): Promise<void> {
    await this.expectReceipt({ type: FrameType.Subscribe, channel, consumerId, destination, prefetch });
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closedPromise;
  }
}

function msg(destination: string, text: string, extra: Partial<Message> = {}): Message {
  return {
    destination,
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    properties: {},
    body: Buffer.from(text),
    ...extra,
  };
}

function texts(ms: DeliveredMessage[]): string[] {
  return ms.map((m) => m.body.toString());
}

interface Harness {
  broker: Broker;
  listener: NativeListener;
  port: number;
  clients: RawClient[];
  open(hello?: Partial<HelloFrame>): Promise<RawClient>;
  connect(): Promise<RawClient>;
}

async function startBroker(store: Store): Promise<Broker> {
  await store.open();
  await store.takeOver('node-1', 'test');
  const broker = new Broker({
    nodeName: 'node-1',
    store,
    redelivery: { initialRedeliveryDelay: 0, redeliveryDelay: 0 },
  });
  await broker.start();
  return broker;
}

const harnesses: { h: Harness; store: Store }[] = [];

async function harness(
  options: Partial<NativeListenerOptions> = {},
  store: Store = new MemoryStore({ database: new MemoryDatabase(), cluster: 'test' }),
): Promise<Harness> {
  const broker = await startBroker(store);
  const listener = new NativeListener({
    broker,
    host: '127.0.0.1',
    port: 0,
    heartbeatMs: 0,
    describe: () => ({ broker: DESCRIPTION, brokers: BROKERS }),
    ...options,
  });
  const { port } = await listener.start();
  const clients: RawClient[] = [];
  const h: Harness = {
    broker,
    listener,
    port,
    clients,
    async open(hello) {
      const c = await RawClient.open(port, hello);
      clients.push(c);
      return c;
    },
    async connect() {
      const c = await RawClient.connect(port);
      clients.push(c);
      return c;
    },
  };
  harnesses.push({ h, store });
  return h;
}

afterEach(async () => {
  for (const { h, store } of harnesses.splice(0)) {
    for (const c of h.clients) await c.close();
    await h.listener.stop();
    await h.broker.stop();
    await store.close();
  }
});

describe('NativeListener handshake', () => {
  it('welcomes a client with the broker description, connection id, heartbeat and frame size', async () => {
    const h = await harness({ heartbeatMs: 5000, maxFrameSize: 1 << 20 });
    const c = await h.connect();
    const w = await c.handshake({ clientId: 'app-1', heartbeatMs: 8000, maxFrameSize: 1 << 19 });
    expect(w.type).toBe(FrameType.Welcome);
    const welcome = w as WelcomeFrame;
    expect(welcome).toMatchObject({
      protocolVersion: PROTOCOL_VERSION,
      clientId: 'app-1',
      broker: DESCRIPTION,
      brokers: BROKERS,
      heartbeatMs: 8000,
      maxFrameSize: 1 << 19,
    });
    const conns = h.broker.listConnections();
    expect(conns).toHaveLength(1);
    expect(conns[0]).toMatchObject({ id: welcome.connectionId, clientId: 'app-1', protocol: 'native' });
    expect(h.listener.connectionCount).toBe(1);
  });

  it('refuses a wrong password with a fatal AUTH_FAILED and closes the socket', async () => {
    const seen: { username?: string; password?: string }[] = [];
    const warnings: string[] = [];
    const logger = {
      debug: () => {},
      info: () => {},
      warn: (obj: object, m?: string) => warnings.push(JSON.stringify(obj) + (m ?? '')),
      error: () => {},
      child() {
        return logger;
      },
    };
    const h = await harness({
      logger,
      authenticate: async (username, password) => {
        seen.push({ username, password });
        return username === 'alice' && password === 's3cret';
      },
    });
    const bad = await h.connect();
    const e = await bad.handshake({ username: 'alice', password: 'wrong-pw' });
    expect(e).toMatchObject({ type: FrameType.Error, code: 'AUTH_FAILED', fatal: true });
    await bad.closedPromise;
    expect(h.broker.listConnections()).toHaveLength(0);
    expect(warnings.join('\n')).not.toContain('wrong-pw');

    const good = await h.open({ username: 'alice', password: 's3cret' });
    await good.ping();
    expect(seen).toEqual([
      { username: 'alice', password: 'wrong-pw' },
      { username: 'alice', password: 's3cret' },
    ]);
  });

  it('answers a client with no common protocol version with UNSUPPORTED_VERSION', async () => {
    const h = await harness();
    const c = await h.connect();
    const e = await c.handshake({
      protocolVersion: PROTOCOL_VERSION + 5,
      minProtocolVersion: PROTOCOL_VERSION + 3,
    });
    expect(e).toMatchObject({ type: FrameType.Error, code: 'UNSUPPORTED_VERSION', fatal: true });
    await c.closedPromise;
    expect(h.broker.listConnections()).toHaveLength(0);
  });

  it('refuses a frame before the handshake and a non-Keel protocol header', async () => {
    const h = await harness();
    const early = await h.connect();
    early.socket.write(PROTOCOL_HEADER);
    early.send({ type: FrameType.SessionOpen, channel: 1, transacted: false, ackMode: 'auto' });
    expect(await early.fatalError()).toMatchObject({ code: 'PROTOCOL_ERROR' });
    await early.closedPromise;

    const http = await h.connect();
    http.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(await http.fatalError()).toMatchObject({ code: 'PROTOCOL_ERROR' });
    await http.closedPromise;
  });

  it('closes a socket that does not complete the handshake in time', async () => {
    const h = await harness({ handshakeTimeoutMs: 100 });
    const serverClosed = new Promise((resolve) => h.listener.once('client:close', resolve));
    const c = await h.connect();
    expect(await c.fatalError()).toMatchObject({ code: 'TIMEOUT' });
    await c.closedPromise;
    expect(await serverClosed).toEqual({ connectionId: null, remoteAddress: expect.any(String) });
    expect(h.listener.connectionCount).toBe(0);
  });
});

describe('NativeListener messaging', () => {
  it('sends with receipts and delivers MESSAGE frames on the consumer session channel', async () => {
    const h = await harness();
    const consumer = await h.open();
    await consumer.openSession(3);
    await consumer.subscribe(3, 'k1', 'queue://orders', 10);
    const producer = await h.open();
    await producer.openSession(1);
    for (const t of ['a', 'b']) {
      const rid = producer.nextReceiptId();
      producer.send({
        type: FrameType.Send,
        channel: 1,
        receiptId: rid,
        message: msg('queue://orders', t, { properties: { n: 1 } }),
      });
      expect(await producer.answer(rid)).toMatchObject({
        type: FrameType.Receipt,
        channel: 1,
        receiptId: rid,
      });
    }
    const got = await consumer.waitMessages(2);
    expect(texts(got)).toEqual(['a', 'b']);
    expect(got[0]).toMatchObject({
      destination: 'queue://orders',
      persistent: true,
      properties: { n: 1 },
      redelivered: false,
      deliveryCount: 0,
    });
    const frames = consumer.frames.filter((f) => f.type === FrameType.Message) as MessageFrame[];
    expect(frames.every((f) => f.channel === 3 && f.consumerId === 'k1')).toBe(true);
    // Acknowledged with a receipt: the queue is empty afterwards.
    await consumer.expectReceipt({
      type: FrameType.Ack,
      channel: 3,
      consumerId: 'k1',
      messageIds: got.map((m) => m.messageId),
    });
    expect(h.broker.getQueue('orders')).toMatchObject({ depth: 0, inflight: 0 });
  });

  it.each([
    [1, false],
    [2, true],
  ])(
    'speaks protocol version %i (compact headers: %s) with a client that asks for it',
    async (version, compact) => {
      const h = await harness();
      const c = await RawClient.connect(h.port);
      const welcome = await c.handshake({ protocolVersion: version, minProtocolVersion: 1 });
      expect(welcome).toMatchObject({ type: FrameType.Welcome, protocolVersion: version });
      c.compact = compact;
      await c.openSession(1);
      await c.subscribe(1, 'k1', 'queue://versions', 10);
      const rid = c.nextReceiptId();
      c.send({
        type: FrameType.Send,
        channel: 1,
        receiptId: rid,
        message: msg('queue://versions', 'v', { properties: { n: 1 } }),
      });
      expect(await c.answer(rid)).toMatchObject({ type: FrameType.Receipt, receiptId: rid });
      const [m] = await c.waitMessages(1);
      expect(m).toMatchObject({ destination: 'queue://versions', properties: { n: 1 }, deliveryCount: 0 });
      expect(m!.body.toString()).toBe('v');
      // The RECEIPTs (session, subscription, send) and the MESSAGE: compact only once version 2 is agreed.
      expect(c.compactFrames).toBe(compact ? 4 : 0);
      await c.expectReceipt({
        type: FrameType.Ack,
        channel: 1,
        consumerId: 'k1',
        messageIds: [m!.messageId],
      });
      expect(h.broker.getQueue('versions')).toMatchObject({ depth: 0, inflight: 0 });
    },
  );

  it('answers the sends of one commit round with one RECEIPT per channel under version 2 (more)', async () => {
    const h = await harness();
    const c = await RawClient.connect(h.port);
    await c.handshake({ protocolVersion: 2, minProtocolVersion: 1 });
    c.compact = true;
    await c.openSession(1);
    const ids = Array.from({ length: 20 }, () => c.nextReceiptId());
    for (const [i, rid] of ids.entries()) {
      c.send({ type: FrameType.Send, channel: 1, receiptId: rid, message: msg('queue://gathered', `m${i}`) });
    }
    const answered: string[] = [];
    const frames: ReceiptFrame[] = [];
    while (answered.length < ids.length) {
      const f = (await c.take(
        (x) => x.type === FrameType.Receipt && x.receiptId !== undefined,
      )) as ReceiptFrame;
      frames.push(f);
      answered.push(f.receiptId, ...(f.more ?? []).map((e) => e.receiptId));
      expect([f, ...(f.more ?? [])].every((e) => typeof e.messageId === 'string')).toBe(true);
    }
    expect(answered).toEqual(ids); // every send answered once, in order
    expect(frames.length).toBeLessThan(ids.length); // in fewer frames
    expect(h.broker.getQueue('gathered')).toMatchObject({ depth: 20 });
  });

  it('never sends more MESSAGE frames than the consumer has credit until ACK or CREDIT', async () => {
    const h = await harness();
    const consumer = await h.open();
    await consumer.openSession(1);
    await consumer.subscribe(1, 'k', 'queue://credit', 2);
    const producer = await h.open();
    await producer.openSession(1);
    for (let i = 0; i < 6; i++) {
      await producer.expectReceipt({
        type: FrameType.Send,
        channel: 1,
        message: msg('queue://credit', `m${i}`),
      });
    }
    await consumer.waitMessages(2);
    await consumer.ping();
    expect(texts(consumer.messages())).toEqual(['m0', 'm1']);

    consumer.send({ type: FrameType.Credit, channel: 1, consumerId: 'k', credit: 1 });
    await consumer.waitMessages(3);
    await consumer.ping();
    expect(consumer.messages()).toHaveLength(3);

    const first = consumer.messages()[0]!;
    await consumer.expectReceipt({
      type: FrameType.Ack,
      channel: 1,
      consumerId: 'k',
      messageIds: [first.messageId],
    });
    await consumer.waitMessages(4);
    await consumer.ping();
    expect(texts(consumer.messages())).toEqual(['m0', 'm1', 'm2', 'm3']);
  });

  it('acknowledges cumulatively: everything up to the id, the rest is redelivered on close', async () => {
    const h = await harness();
    const producer = await h.open();
    await producer.openSession(1);
    for (let i = 0; i < 5; i++) {
      await producer.expectReceipt({
        type: FrameType.Send,
        channel: 1,
        message: msg('queue://cumul', `m${i}`),
      });
    }
    const consumer = await h.open();
    await consumer.openSession(1);
    await consumer.subscribe(1, 'k', 'queue://cumul', 10);
    const got = await consumer.waitMessages(5);
    await consumer.expectReceipt({
      type: FrameType.Ack,
      channel: 1,
      consumerId: 'k',
      messageIds: [got[2]!.messageId],
      cumulative: true,
    });
    expect(h.broker.getQueue('cumul')).toMatchObject({ inflight: 2 });
    await consumer.expectReceipt({ type: FrameType.Unsubscribe, channel: 1, consumerId: 'k' });

    const second = await h.open();
    await second.openSession(1);
    await second.subscribe(1, 'k2', 'queue://cumul', 10);
    const again = await second.waitMessages(2);
    await second.ping();
    expect(texts(again)).toEqual(['m3', 'm4']);
    expect(again.every((m) => m.redelivered)).toBe(true);
  });

  it('redelivers a NACKed message with the redelivered flag and a delivery count', async () => {
    const h = await harness();
    const c = await h.open();
    await c.openSession(1);
    await c.subscribe(1, 'k', 'queue://nack', 1);
    await c.expectReceipt({ type: FrameType.Send, channel: 1, message: msg('queue://nack', 'x') });
    const [first] = await c.waitMessages(1);
    expect(first).toMatchObject({ redelivered: false, deliveryCount: 0 });
    await c.expectReceipt({
      type: FrameType.Nack,
      channel: 1,
      consumerId: 'k',
      messageIds: [first!.messageId],
    });
    const all = await c.waitMessages(2);
    expect(all[1]).toMatchObject({ messageId: first!.messageId, redelivered: true, deliveryCount: 1 });
    expect(all[1]!.body.toString()).toBe('x');
  });

  it('commits and rolls back transactions; TX_OUTCOME reports a commit', async () => {
    const h = await harness();
    const consumer = await h.open();
    await consumer.openSession(1);
    await consumer.subscribe(1, 'k', 'queue://tx', 100);
    const p = await h.open();
    await p.openSession(2, true);

    await p.expectReceipt({ type: FrameType.TxBegin, channel: 2, txId: 'tx-1' });
    await p.expectReceipt({
      type: FrameType.Send,
      channel: 2,
      txId: 'tx-1',
      message: msg('queue://tx', 'a'),
    });
    await p.expectReceipt({
      type: FrameType.Send,
      channel: 2,
      txId: 'tx-1',
      message: msg('queue://tx', 'b'),
    });
    await consumer.ping();
    expect(consumer.messages()).toHaveLength(0);
    await p.expectReceipt({ type: FrameType.TxCommit, channel: 2, txId: 'tx-1' });
    expect(texts(await consumer.waitMessages(2))).toEqual(['a', 'b']);

    const outcome = await p.request({ type: FrameType.TxOutcome, channel: 2, txId: 'tx-1' });
    expect(outcome).toMatchObject({
      type: FrameType.TxOutcome,
      channel: 2,
      txId: 'tx-1',
      outcome: 'committed',
    });
    const unknown = await p.request({ type: FrameType.TxOutcome, channel: 0, txId: 'never' });
    expect(unknown).toMatchObject({ type: FrameType.TxOutcome, outcome: 'unknown' });

    await p.expectReceipt({ type: FrameType.TxBegin, channel: 2, txId: 'tx-2' });
    await p.expectReceipt({
      type: FrameType.Send,
      channel: 2,
      txId: 'tx-2',
      message: msg('queue://tx', 'rolled-back'),
    });
    await p.expectReceipt({ type: FrameType.TxRollback, channel: 2, txId: 'tx-2' });
    await p.expectReceipt({ type: FrameType.Send, channel: 2, message: msg('queue://tx', 'c') });
    await consumer.waitMessages(3);
    await consumer.ping();
    expect(texts(consumer.messages())).toEqual(['a', 'b', 'c']);

    // A transacted ack that is rolled back gives the message back, redelivered.
    const [a] = consumer.messages();
    await consumer.expectReceipt({ type: FrameType.TxBegin, channel: 1, txId: 'tx-3' });
    await consumer.expectReceipt({
      type: FrameType.Ack,
      channel: 1,
      consumerId: 'k',
      messageIds: [a!.messageId],
      txId: 'tx-3',
    });
    await consumer.expectReceipt({ type: FrameType.TxRollback, channel: 1, txId: 'tx-3' });
    const after = await consumer.waitMessages(4);
    expect(after[3]).toMatchObject({ messageId: a!.messageId, redelivered: true });

    // Committing an unknown transaction is a per-request error with its code.
    const err = await p.request({ type: FrameType.TxCommit, channel: 2, txId: 'nope' });
    expect(err).toMatchObject({ type: FrameType.Error, code: 'UNKNOWN_TRANSACTION', fatal: false });
  });

  it('reports a per-request error (invalid destination, unknown op) without closing the connection', async () => {
    const h = await harness();
    const c = await h.open();
    await c.openSession(1);
    const e = await c.request({ type: FrameType.Send, channel: 1, message: msg('bogus-destination', 'x') });
    expect(e).toMatchObject({
      type: FrameType.Error,
      channel: 1,
      code: 'INVALID_ARGUMENT',
      fatal: false,
      retryable: false,
    });
    const op = await c.request({
      type: FrameType.Request,
      channel: 0,
      op: 'launch-rockets',
      args: {},
    } as Frame & {
      receiptId?: string;
    });
    expect(op).toMatchObject({ type: FrameType.Error, code: 'INVALID_ARGUMENT', fatal: false });
    const unknownConsumer = await c.request({
      type: FrameType.Ack,
      channel: 1,
      consumerId: 'ghost',
      messageIds: ['1'],
    });
    expect(unknownConsumer).toMatchObject({ type: FrameType.Error, code: 'UNKNOWN_CONSUMER', fatal: false });
    await c.ping();
    await c.expectReceipt({ type: FrameType.Send, channel: 1, message: msg('queue://fine', 'ok') });
    expect(c.closed).toBe(false);
  });

  it('closing a session closes its consumers (unacked messages go back to the queue)', async () => {
    const h = await harness();
    const c = await h.open();
    await c.openSession(1);
    await c.openSession(2);
    await c.subscribe(2, 'k', 'queue://sess', 5);
    await c.expectReceipt({ type: FrameType.Send, channel: 1, message: msg('queue://sess', 'x') });
    await c.waitMessages(1);
    await c.expectReceipt({ type: FrameType.SessionClose, channel: 2 });
    expect(h.broker.listConsumers()).toHaveLength(0);
    expect(h.broker.getQueue('sess')).toMatchObject({ depth: 1, inflight: 0 });
    // The channel is gone: a frame on it is a protocol violation.
    c.send({ type: FrameType.Credit, channel: 2, consumerId: 'k', credit: 1 });
    expect(await c.fatalError()).toMatchObject({ code: 'PROTOCOL_ERROR' });
    await c.closedPromise;
  });

  it('answers CLOSE with a receipt after the pending requests, then ends the connection', async () => {
    const h = await harness();
    const c = await h.open();
    await c.openSession(1);
    const sendId = c.nextReceiptId();
    c.send({ type: FrameType.Send, channel: 1, receiptId: sendId, message: msg('queue://bye', 'x') });
    c.send({ type: FrameType.Close, channel: 0, receiptId: 'bye' });
    await c.answer('bye');
    const order = c.frames
      .map((f) => ('receiptId' in f ? f.receiptId : null))
      .filter((r) => r === sendId || r === 'bye');
    expect(order).toEqual([sendId, 'bye']);
    await c.closedPromise;
    expect(h.broker.listConnections()).toHaveLength(0);
  });
});

describe('NativeListener failures', () => {
  it('closes a silent client after 3 heartbeat intervals and redelivers its unacked messages', async () => {
    const h = await harness({ heartbeatMs: 100 });
    const silent = await h.open({ heartbeatMs: 100 });
    await silent.openSession(1);
    await silent.subscribe(1, 'k', 'queue://hb', 10);
    await silent.expectReceipt({ type: FrameType.Send, channel: 1, message: msg('queue://hb', 'x') });
    await silent.waitMessages(1);
    // Now the client says nothing: the broker beats, then gives up on it.
    await silent.take((f) => f.type === FrameType.Heartbeat);
    expect(await silent.fatalError()).toMatchObject({ code: 'HEARTBEAT_TIMEOUT', retryable: true });
    await silent.closedPromise;

    const other = await h.open({ heartbeatMs: 0 });
    await other.openSession(1);
    await other.subscribe(1, 'k', 'queue://hb', 10);
    const [m] = await other.waitMessages(1);
    expect(m).toMatchObject({ redelivered: true });
    expect(m!.body.toString()).toBe('x');
  });

  it('keeps a client that heartbeats alive', async () => {
    const h = await harness({ heartbeatMs: 50 });
    const c = await h.open({ heartbeatMs: 50 });
    // Beat for 8 intervals (more than the 3 the broker tolerates), counting the broker's beats.
    for (let i = 0; i < 8; i++) {
      await c.take((f) => f.type === FrameType.Heartbeat);
      c.send({ type: FrameType.Heartbeat, channel: 0 });
    }
    await c.ping();
    expect(c.closed).toBe(false);
  });

  it('gives malformed bytes a fatal ERROR and closes only that connection', async () => {
    const h = await harness();
    const good = await h.open();
    const bad = await h.open();
    bad.socket.write(Buffer.from([0xff, 0, 0, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xce]));
    expect(await bad.fatalError()).toMatchObject({ code: 'PROTOCOL_ERROR', fatal: true });
    await bad.closedPromise;

    const bad2 = await h.open();
    // A valid frame layout whose JSON header is garbage.
    const json = Buffer.from('{nope');
    const frame = Buffer.alloc(7 + 4 + json.length + 1);
    frame[0] = FrameType.Send;
    frame.writeUInt16BE(1, 1);
    frame.writeUInt32BE(4 + json.length, 3);
    frame.writeUInt32BE(json.length, 7);
    json.copy(frame, 11);
    frame[frame.length - 1] = 0xce;
    bad2.socket.write(frame);
    expect(await bad2.fatalError()).toMatchObject({ code: 'PROTOCOL_ERROR' });
    await bad2.closedPromise;

    await good.ping();
    await good.openSession(1);
    await good.expectReceipt({ type: FrameType.Send, channel: 1, message: msg('queue://still', 'ok') });
    expect(h.broker.listConnections()).toHaveLength(1);
  });

  it('gives an oversized frame a fatal FRAME_TOO_LARGE and closes only that connection', async () => {
    const h = await harness({ maxFrameSize: 64 * 1024 });
    const good = await h.open();
    const big = await h.open();
    await big.openSession(1);
    big.send({ type: FrameType.Send, channel: 1, message: msg('queue://big', 'x'.repeat(100 * 1024)) });
    expect(await big.fatalError()).toMatchObject({ code: 'FRAME_TOO_LARGE', fatal: true });
    await big.closedPromise;
    await good.ping();
    expect(good.closed).toBe(false);
    expect(h.broker.getQueue('big')).toBeNull();
  });

  it('limits frames to preHandshakeMaxFrameSize until WELCOME, to maxFrameSize after (issue #23.3)', async () => {
    const h = await harness({ preHandshakeMaxFrameSize: 16 * 1024 });
    const hostile = await RawClient.connect(h.port);
    h.clients.push(hostile);
    const refused = await hostile.handshake({ username: 'u', password: 'p'.repeat(100 * 1024) });
    expect(refused).toMatchObject({ code: 'FRAME_TOO_LARGE', fatal: true });
    await hostile.closedPromise;
    const good = await h.open();
    await good.openSession(1);
    await good.expectReceipt({
      type: FrameType.Send,
      channel: 1,
      message: msg('queue://after', 'x'.repeat(100 * 1024)),
    });
    expect(h.broker.getQueue('after')?.depth).toBe(1);
  });

  it('stops dispatching to a congested socket and cuts it after slowConsumerTimeoutMs', async () => {
    const h = await harness({ slowConsumerTimeoutMs: 300 });
    const setWritable = jest.spyOn(h.broker, 'setWritable');
    const slow = await h.open();
    await slow.openSession(1);
    await slow.subscribe(1, 'k', 'queue://slow', 1000);
    slow.socket.pause(); // stop reading: kernel buffers fill, then the broker's socket buffer
    const connId = h.broker.listConnections()[0]!.id;
    const cut = new Promise<void>((resolve) =>
      h.listener.on('client:close', (e) => {
        if (e.connectionId === connId) resolve();
      }),
    );
    const producer = await h.open();
    await producer.openSession(1);
    const body = 'y'.repeat(256 * 1024);
    const congested = (): boolean => setWritable.mock.calls.some(([c, w]) => c.id === connId && w === false);
    const depth = (): number => {
      const q = h.broker.getQueue('slow');
      return q ? q.depth - q.inflight : 0; // waiting, not yet handed to the consumer
    };
    // Until the kernel buffers are full and the broker stops handing messages to the consumer.
    for (let i = 0; i < 200 && depth() === 0; i++) {
      await producer.expectReceipt({
        type: FrameType.Send,
        channel: 1,
        message: msg('queue://slow', body, { persistent: false }),
      });
    }
    expect(congested()).toBe(true);
    expect(depth()).toBeGreaterThan(0);
    expect(h.broker.connections.get(connId)?.writable).toBe(false);
    await cut;
    expect(h.broker.connections.has(connId)).toBe(false);
    expect(h.broker.getQueue('slow')!.inflight).toBe(0);
    await producer.ping();
  });

  it('stop() destroys every client socket and closes their broker connections', async () => {
    const h = await harness();
    const a = await h.open();
    const b = await h.open();
    expect(h.listener.connectionCount).toBe(2);
    await h.listener.stop();
    await Promise.all([a.closedPromise, b.closedPromise]);
    expect(h.listener.connectionCount).toBe(0);
    expect(h.broker.listConnections()).toHaveLength(0);
  });

  it('closes the socket when the broker closes the connection (broker stop)', async () => {
    const h = await harness();
    const c = await h.open();
    await h.broker.stop();
    expect(await c.fatalError()).toMatchObject({ code: 'CONNECTION_CLOSED', retryable: true });
    await c.closedPromise;
  });
});

describe('NativeListener over PgStore', () => {
  const db = useTestDatabase();

  it('sends the RECEIPT of a persistent SEND only once the row is in keel_messages', async () => {
    const cluster = `native-${process.pid}`;
    const store = new PgStore({ connectionString: db.url, cluster, poolSize: 2 });
    const h = await harness({}, store);
    const pg = new Client({ connectionString: db.url });
    pg.on('error', () => {});
    await pg.connect();
    try {
      const c = await h.open();
      await c.openSession(1);
      const rows = async (): Promise<string[]> => {
        const r = await pg.query<{ body: Buffer }>(
          `SELECT m.body FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
            WHERE d.cluster = $1 AND d.name = $2 ORDER BY m.id`,
          [cluster, 'durable.orders'],
        );
        return r.rows.map((x) => x.body.toString());
      };
      for (const t of ['p1', 'p2', 'p3']) {
        const rid = c.nextReceiptId();
        c.send({
          type: FrameType.Send,
          channel: 1,
          receiptId: rid,
          message: msg('queue://durable.orders', t),
        });
        const answer = await c.answer(rid);
        expect(answer.type).toBe(FrameType.Receipt);
        // Queried when the receipt arrives: the commit that holds the message has happened.
        expect(await rows()).toContain(t);
      }
      expect(await rows()).toEqual(['p1', 'p2', 'p3']);
    } finally {
      await pg.end();
    }
  });
});
