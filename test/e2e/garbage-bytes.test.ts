/**
 * Arbitrary bytes against a real broker process (issue #23.5): fast-check generates what peers
 * send on raw sockets to the native port and the STOMP port — pure garbage, garbage after a valid
 * handshake, and well-framed frames with random commands, headers, JSON fields and bodies — while
 * one well-behaved native client and one STOMP client keep sending and receiving canaries.
 *
 * Promise: the broker process never exits, every canary (receipted sends) reaches its consumer
 * exactly once, and a new client can still connect afterwards. The number of runs is bounded.
 */
import * as net from 'node:net';
import { type Connection, connect } from '@keel/client';
import {
  encodeFrame,
  encodeStompFrame,
  FRAME_END,
  FrameType,
  getStompHeader,
  PROTOCOL_HEADER,
  PROTOCOL_VERSION,
  STOMP_CLIENT_COMMANDS,
  StompDecoder,
  type StompFrame,
} from '@keel/protocol';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import fc from 'fast-check';
import { startNode } from './helpers/cluster';

jest.setTimeout(180_000);

const db = useTestDatabase();
const RUNS_PER_PORT = 300;
const PARALLEL = 4;
const CANARY_EVERY = 10;

let node: BrokerProcess;

beforeAll(async () => {
  node = await startNode({ db: db.url, cluster: 'garbage', name: 'garbage-n1' });
  await node.waitForRole('master');
});

afterAll(async () => {
  await stopAll();
});

// ----- what hostile peers send -------------------------------------------------------------------

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const text = fc.string({ unit: 'binary', maxLength: 24 });

const STOMP_HEADER_NAMES = [
  'destination',
  'id',
  'ack',
  'receipt',
  'transaction',
  'selector',
  'content-length',
  'content-type',
  'persistent',
  'expires',
  'priority',
  'message-id',
  'subscription',
  'accept-version',
  'heart-beat',
  'login',
  'passcode',
  'client-id',
  'activemq.subscriptionName',
  'AMQ_SCHEDULED_DELAY',
  'reply-to',
];
const STOMP_VALUES = [
  '/queue/garbage',
  '/topic/garbage',
  '/queue/garbage.>',
  '/queue/a,/topic/b',
  '/temp-queue/x',
  'client',
  'client-individual',
  'auto',
  '0',
  '-1',
  '1e309',
  '99999999999999999999',
  'true',
  "JMSType = 'x' AND (",
  '1.2',
  '0,0',
  '',
];

const stompFrameArb: fc.Arbitrary<Buffer> = fc
  .record({
    command: fc.constantFrom(...STOMP_CLIENT_COMMANDS, 'MESSAGE', 'CONNECTED'),
    headers: fc.array(
      fc.tuple(
        fc.oneof(fc.constantFrom(...STOMP_HEADER_NAMES), text),
        fc.oneof(fc.constantFrom(...STOMP_VALUES), text),
      ),
      { maxLength: 6 },
    ),
    body: bytes(64),
  })
  .map(({ command, headers, body }) => {
    // Raw text, no escaping: also malformed header lines, stray escapes and wrong content-lengths.
    const head = [command, ...headers.map(([n, v]) => `${n}:${v}`)].join('\n');
    return Buffer.concat([Buffer.from(`${head}\n\n`, 'latin1'), body, Buffer.from([0])]);
  });

const STOMP_CONNECT = Buffer.from('CONNECT\naccept-version:1.2\nhost:keel\n\n\0');

/** A valid handshake first (its answer awaited, so the rest reaches frame handling), or none. */
interface Payload {
  handshake: Buffer | null;
  parts: Buffer[];
}

const stompPayload: fc.Arbitrary<Payload> = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.oneof(stompFrameArb, bytes(48), fc.constantFrom(Buffer.from('\n'), Buffer.from('\r\n'))), {
      minLength: 1,
      maxLength: 6,
    }),
  )
  .map(([handshake, parts]): Payload => ({ handshake: handshake ? STOMP_CONNECT : null, parts }));

function rawNativeFrame(type: number, channel: number, json: string, body: Buffer): Buffer {
  const header = Buffer.from(json, 'utf8');
  const buf = Buffer.alloc(7 + 4 + header.length + body.length + 1);
  buf[0] = type;
  buf.writeUInt16BE(channel, 1);
  buf.writeUInt32BE(4 + header.length + body.length, 3);
  buf.writeUInt32BE(header.length, 7);
  header.copy(buf, 11);
  body.copy(buf, 11 + header.length);
  buf[buf.length - 1] = FRAME_END;
  return buf;
}

const nativeField = fc.oneof(
  fc.constantFrom('queue://garbage', 'topic://garbage', 'queue://garbage.>', 'client', 'auto', 'individual'),
  fc.integer({ min: -2, max: 70_000 }),
  fc.boolean(),
  fc.constant(null),
  text,
);
const nativeHeader = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.dictionary(
    fc.constantFrom(
      'destination',
      'consumerId',
      'receiptId',
      'messageIds',
      'transacted',
      'ackMode',
      'selector',
      'prefetch',
      'credit',
      'txId',
      'durableName',
      'noLocal',
      'protocolVersion',
      'heartbeatMs',
    ),
    nativeField,
    { maxKeys: 6 },
  ),
  fc.record({
    receiptId: fc.string({ maxLength: 4 }),
    message: fc.dictionary(
      fc.constantFrom(
        'destination',
        'persistent',
        'priority',
        'timestamp',
        'expiration',
        'properties',
        'producerSeq',
      ),
      nativeField,
    ),
  }),
);
const nativeFrameArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.integer({ min: 0, max: 25 }), fc.integer({ min: 0, max: 4 }), nativeHeader, bytes(32))
  .map(([type, channel, header, body]) =>
    rawNativeFrame(type, channel, JSON.stringify(header) ?? 'null', body),
  );

const NATIVE_HANDSHAKE = Buffer.concat([
  PROTOCOL_HEADER,
  encodeFrame({ type: FrameType.Hello, channel: 0, protocolVersion: PROTOCOL_VERSION, heartbeatMs: 0 }),
]);

const nativePayload: fc.Arbitrary<Payload> = fc
  .tuple(fc.boolean(), fc.array(fc.oneof(nativeFrameArb, bytes(48)), { minLength: 1, maxLength: 6 }))
  .map(([handshake, parts]): Payload => ({ handshake: handshake ? NATIVE_HANDSHAKE : null, parts }));

/**
 * Send the payload on a fresh socket (after the handshake's answer, when it has one), then
 * half-close and wait until the broker closes its side (or 3 s pass: a broker may rightly wait for
 * the rest of a frame; then we close). Resolves with everything the broker sent.
 */
function hurl(port: number, { handshake, parts }: Payload): Promise<Buffer> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const answer: Buffer[] = [];
    const rest = () => {
      for (const p of parts) socket.write(p);
      socket.end();
    };
    socket.on('error', () => {}); // a reset from the broker is a fine answer
    socket.on('data', (d: Buffer) => {
      answer.push(d);
      if (answer.length === 1 && handshake !== null) rest();
    });
    const timer = setTimeout(() => socket.destroy(), 3_000);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(answer));
    });
    socket.once('connect', () => {
      if (handshake !== null) socket.write(handshake);
      else rest();
    });
  });
}

// ----- well-behaved clients ----------------------------------------------------------------------

/** A STOMP 1.2 client on a raw socket, just enough for canaries. */
class StompCanary {
  private readonly decoder = new StompDecoder();
  private readonly frames: StompFrame[] = [];
  private waiters: Array<() => void> = [];
  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk) => {
      for (const e of this.decoder.push(chunk)) if (e.type === 'frame') this.frames.push(e.frame);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(port: number): Promise<StompCanary> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new StompCanary(socket);
    c.send({
      command: 'CONNECT',
      headers: [
        ['accept-version', '1.2'],
        ['host', 'keel'],
      ],
      body: Buffer.alloc(0),
    });
    await c.next((f) => f.command === 'CONNECTED');
    return c;
  }

  send(frame: StompFrame): void {
    this.socket.write(encodeStompFrame(frame));
  }

  /** The first frame (taken off the queue) that matches, within 10 s. */
  async next(match: (f: StompFrame) => boolean): Promise<StompFrame> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const i = this.frames.findIndex(match);
      if (i >= 0) return this.frames.splice(i, 1)[0]!;
      const error = this.frames.find((f) => f.command === 'ERROR');
      if (error) throw new Error(`STOMP canary got ERROR: ${getStompHeader(error, 'message')}`);
      if (Date.now() > deadline) throw new Error('STOMP canary: no answer within 10 s');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 500);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Canaries {
  sent: number;
  stompReceived: Map<string, number>;
  nativeReceived: Map<string, number>;
}

test('garbage and random frames on both ports never take the broker down; canaries keep flowing', async () => {
  const counts: Canaries = { sent: 0, stompReceived: new Map(), nativeReceived: new Map() };
  const native: Connection = await connect(`tcp://127.0.0.1:${node.port}`, { connectTimeoutMs: 5_000 });
  native.on('error', () => {});
  const session = await native.createSession();
  const consumer = await session.createConsumer('queue://canary.native');
  let onNative: () => void = () => {};
  consumer.on('message', (m) => {
    counts.nativeReceived.set(m.text(), (counts.nativeReceived.get(m.text()) ?? 0) + 1);
    onNative();
  });
  const producer = session.createProducer('queue://canary.native');

  const stomp = await StompCanary.open(node.stompPort);
  stomp.send({
    command: 'SUBSCRIBE',
    headers: [
      ['id', 's1'],
      ['destination', '/queue/canary.stomp'],
      ['receipt', 'sub'],
    ],
    body: Buffer.alloc(0),
  });
  await stomp.next((f) => f.command === 'RECEIPT');

  const canary = async (): Promise<void> => {
    const n = String(++counts.sent);
    await producer.send(n, { persistent: true });
    stomp.send({
      command: 'SEND',
      headers: [
        ['destination', '/queue/canary.stomp'],
        ['receipt', `c${n}`],
        ['persistent', 'true'],
      ],
      body: Buffer.from(n),
    });
    await stomp.next((f) => f.command === 'RECEIPT' && getStompHeader(f, 'receipt-id') === `c${n}`);
    const m = await stomp.next((f) => f.command === 'MESSAGE' && f.body.toString() === n);
    counts.stompReceived.set(n, (counts.stompReceived.get(n) ?? 0) + 1);
    expect(m.body.toString()).toBe(n);
  };

  const cases = [
    ...fc
      .sample(stompPayload, { numRuns: RUNS_PER_PORT, seed: 23_5 })
      .map((c) => ({ port: node.stompPort, c })),
    ...fc.sample(nativePayload, { numRuns: RUNS_PER_PORT, seed: 23_6 }).map((c) => ({ port: node.port, c })),
  ];
  const answers: Buffer[] = [];
  for (let i = 0; i < cases.length; i += PARALLEL) {
    answers.push(...(await Promise.all(cases.slice(i, i + PARALLEL).map(({ port, c }) => hurl(port, c)))));
    if ((i / PARALLEL) % CANARY_EVERY === 0) await canary();
    expect(node.exitStatus).toBeUndefined();
  }
  await canary();
  // The generated traffic got past the handshake often enough to reach the broker's frame handling.
  const stompAnswers = answers.slice(0, RUNS_PER_PORT);
  const nativeAnswers = answers.slice(RUNS_PER_PORT);
  expect(stompAnswers.filter((a) => a.includes('CONNECTED\n')).length).toBeGreaterThan(RUNS_PER_PORT / 4);
  expect(nativeAnswers.filter((a) => a.length > 0 && a[0] === FrameType.Welcome).length).toBeGreaterThan(
    RUNS_PER_PORT / 4,
  );
  expect(answers.filter((a) => a.length === 0).length).toBeLessThan(answers.length);

  // Every native canary arrives exactly once (waiting for the stragglers, by event).
  const deadline = Date.now() + 15_000;
  while (counts.nativeReceived.size < counts.sent && Date.now() < deadline) {
    await new Promise<void>((resolve) => {
      onNative = resolve;
      setTimeout(resolve, 500);
    });
  }
  const expected = Array.from({ length: counts.sent }, (_, k) => String(k + 1));
  const lost = (m: Map<string, number>) => expected.filter((n) => !m.has(n)).length;
  const duplicated = (m: Map<string, number>) => [...m.values()].filter((v) => v > 1).length;
  expect({
    sent: counts.sent,
    lost: lost(counts.nativeReceived),
    duplicated: duplicated(counts.nativeReceived),
  }).toEqual({ sent: counts.sent, lost: 0, duplicated: 0 });
  expect({ lost: lost(counts.stompReceived), duplicated: duplicated(counts.stompReceived) }).toEqual({
    lost: 0,
    duplicated: 0,
  });

  // Still up, still serving new clients, and nothing fatal was logged.
  expect(node.exitStatus).toBeUndefined();
  const fresh = await connect(`tcp://127.0.0.1:${node.port}`, { connectTimeoutMs: 5_000 });
  await fresh.close();
  const again = await StompCanary.open(node.stompPort);
  again.close();
  stomp.close();
  await native.close();
  expect(node.logs.filter((l) => typeof l.level === 'number' && l.level >= 60)).toEqual([]);
});

// Found by the coverage-guided campaign (packages/protocol/fuzz/crashes/native): JSON.parse turns
// 1e999 into Infinity, and the native decoder let it through as a timestamp, an expiration, a
// producer sequence or a property value although its checks promise finite numbers.
test('a native SEND whose numbers overflow to Infinity is refused and nothing is stored', async () => {
  const send = (json: string, receiptId: string) =>
    rawNativeFrame(FrameType.Send, 1, json.replace('"R"', JSON.stringify(receiptId)), Buffer.alloc(0));
  const open = encodeFrame({ type: FrameType.SessionOpen, channel: 1, transacted: false, ackMode: 'auto' });
  const message = (fields: string) =>
    `{"receiptId":"R","message":{"destination":"queue://garbage.inf","persistent":true,"priority":4,${fields}}}`;
  for (const [i, fields] of [
    '"timestamp":1e999,"expiration":0,"properties":{}',
    '"timestamp":1,"expiration":-1e999,"properties":{}',
    '"timestamp":1,"expiration":0,"producerSeq":1e999,"producerId":"p","properties":{}',
    '"timestamp":1,"expiration":0,"properties":{"x":1e999}',
  ].entries()) {
    const answer = await hurl(node.port, {
      handshake: NATIVE_HANDSHAKE,
      parts: [open, send(message(fields), `inf-${i}`)],
    });
    // Before the fix the broker's own checks refused it as INVALID_ARGUMENT "(got null)"; now the
    // decoder refuses the frame, as the compact form always did.
    expect(answer.includes(Buffer.from('"code":"PROTOCOL_ERROR"'))).toBe(true);
    expect(answer.toString('latin1')).toMatch(/finite number/);
  }
  const conn = await connect(`tcp://127.0.0.1:${node.port}`, { connectTimeoutMs: 5_000 });
  const browsed: unknown[] = [];
  for await (const m of await (await conn.createSession()).browse('queue://garbage.inf')) browsed.push(m);
  await conn.close();
  expect(browsed).toEqual([]);
  expect(node.exitStatus).toBeUndefined();
});
