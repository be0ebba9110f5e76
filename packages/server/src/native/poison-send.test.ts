import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { Broker } from '@keel/core';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  type Message,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
} from '@keel/protocol';
import { PgStore } from '@keel/store-pg';
import { useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { NativeListener } from './native-listener';

/**
 * Issue #17.2, with raw native frames over TCP to a broker on Postgres: one client's SEND carrying
 * a value its column cannot hold (expiration 1.5 or 1e308 into a bigint …) among many good
 * concurrent sends fails alone, with INVALID_ARGUMENT naming the field; every good send is
 * receipted and stored. Before the fix the bad row aborted its whole group-commit round: every
 * producer in it got STORE_ERROR and commits backed off for up to 2 s.
 */
const db = useTestDatabase();

/** A native client from the codec alone: handshake, SENDs, and the answers by receipt id. */
class RawClient {
  private readonly decoder = new FrameDecoder({ maxFrameSize: 1 << 24 });
  private readonly answers = new Map<string, (f: Frame) => void>();
  private welcomed!: () => void;
  readonly welcome = new Promise<void>((resolve) => {
    this.welcomed = resolve;
  });
  private receipts = 0;

  private constructor(private readonly socket: Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.decoder.push(chunk)) {
        if (f.type === FrameType.Welcome) this.welcomed();
        const rid = (f as { receiptId?: string }).receiptId;
        if (rid !== undefined) this.answers.get(rid)?.(f);
        // One RECEIPT may answer several SENDs (`more`, docs/protocol.md).
        if (f.type === FrameType.Receipt) for (const m of f.more ?? []) this.answers.get(m.receiptId)?.(f);
      }
    });
  }

  static async open(port: number): Promise<RawClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawClient(socket);
    socket.write(PROTOCOL_HEADER);
    c.write({ type: FrameType.Hello, channel: 0, protocolVersion: PROTOCOL_VERSION, heartbeatMs: 0 });
    await c.welcome;
    const opened = await c.request({
      type: FrameType.SessionOpen,
      channel: 1,
      transacted: false,
      ackMode: 'auto',
    });
    if (opened.type !== FrameType.Receipt) throw new Error(`session refused: ${JSON.stringify(opened)}`);
    return c;
  }

  private write(frame: Frame): void {
    this.socket.write(encodeFrame(frame));
  }

  request(frame: Frame): Promise<Frame> {
    this.receipts += 1;
    const receiptId = `r${this.receipts}`;
    const answer = new Promise<Frame>((resolve) => this.answers.set(receiptId, resolve));
    this.write({ ...frame, receiptId } as Frame);
    return answer;
  }

  send(message: Message): Promise<Frame> {
    return this.request({ type: FrameType.Send, channel: 1, message });
  }

  close(): void {
    this.socket.destroy();
  }
}

function message(text: string, producerId: string, seq: number, extra: Partial<Message> = {}): Message {
  return {
    destination: 'queue://poison.test',
    persistent: true,
    priority: 4,
    timestamp: Date.now(),
    expiration: 0,
    producerId,
    producerSeq: seq,
    properties: { n: seq },
    body: Buffer.from(text),
    ...extra,
  };
}

const PRODUCERS = 8;
const SENDS_EACH = 40;

describe('a SEND with a value its column cannot hold, among concurrent good sends (raw frames, Postgres)', () => {
  let store: PgStore;
  let broker: Broker;
  let listener: NativeListener;
  let port: number;
  let pg: Client;
  const clients: RawClient[] = [];
  const cluster = `poison-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    store = new PgStore({ connectionString: db.url, cluster, poolSize: 2 });
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
        broker: { name: 'node-1', cluster, role: 'master', epoch: 1, version: '0.1.0' },
        brokers: [],
      }),
    });
    port = (await listener.start()).port;
    pg = new Client({ connectionString: db.url });
    pg.on('error', () => {});
    await pg.connect();
    for (let i = 0; i < PRODUCERS + 1; i++) clients.push(await RawClient.open(port));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await listener.stop();
    await broker.stop();
    await store.close();
    await pg.end();
  });

  async function storedBodies(): Promise<Set<string>> {
    const r = await pg.query<{ body: Buffer }>(
      `SELECT m.body FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
        WHERE d.cluster = $1 AND d.name = 'poison.test'`,
      [cluster],
    );
    return new Set(r.rows.map((x) => x.body.toString()));
  }

  test.each<[string, Partial<Message>, RegExp]>([
    ['expiration 1.5', { expiration: 1.5 }, /expiration/],
    ['expiration 1e308', { expiration: 1e308 }, /expiration/],
    ['expiration -1', { expiration: -1 }, /expiration/],
    ['timestamp 1.5', { timestamp: 1.5 }, /timestamp/],
    ['producerSeq 1.5', { producerSeq: 1.5 }, /producerSeq/],
    ['producerSeq 1e308', { producerSeq: 1e308 }, /producerSeq/],
    ['a property with a lone surrogate', { properties: { bad: 'x\ud800y' } }, /property "bad"/],
    ['a property name with a lone surrogate', { properties: { '\udc00': 1 } }, /property name/],
    ['a correlation id with a NUL', { correlationId: 'a\u0000b' }, /correlationId/],
    ['a type with a lone surrogate', { type: '\ud83d' }, /type/],
    ['a producer id of 5,000 bytes', { producerId: 'p'.repeat(5000) }, /producerId/],
  ])('%s fails alone; every good send is receipted and stored', async (name, bad, field) => {
    const tag = name.replace(/\W+/g, '-');
    const poisoner = clients[PRODUCERS]!;
    const sends: Promise<Frame>[] = [];
    const bodies: string[] = [];
    let poison!: Promise<Frame>;
    for (let s = 1; s <= SENDS_EACH; s++) {
      for (let p = 0; p < PRODUCERS; p++) {
        const body = `${tag}/${p}/${s}`;
        bodies.push(body);
        sends.push(clients[p]!.send(message(body, `${tag}-p${p}`, s)));
      }
      // The poison goes out in the middle of the stream, while good sends fill the rounds.
      if (s === SENDS_EACH / 2) poison = poisoner.send(message(`${tag}/poison`, `${tag}-poison`, 1, bad));
    }
    const answers = await Promise.all(sends);
    const failed = answers.filter((f) => f.type !== FrameType.Receipt);
    expect(failed).toEqual([]);
    const p = await poison;
    expect(p).toMatchObject({ type: FrameType.Error, code: 'INVALID_ARGUMENT', fatal: false });
    expect((p as { message: string }).message).toMatch(field);
    const stored = await storedBodies();
    for (const b of bodies) expect(stored.has(b)).toBe(true);
    expect(stored.has(`${tag}/poison`)).toBe(false);
    // The connection that sent the poison still works.
    const after = await poisoner.send(message(`${tag}/after`, `${tag}-poison`, 2));
    expect(after.type).toBe(FrameType.Receipt);
  });
});
