import { isDeepStrictEqual } from 'node:util';
import { KeelError, ProtocolError } from '../errors';
import { FrameDecoder } from '../native/decoder';
import { encodeFrame } from '../native/encoder';
import { type Frame, FrameType, PROTOCOL_HEADER } from '../native/frames';
import { StompDecoder, type StompDecoderOptions } from '../stomp/stomp-decoder';
import { encodeStompFrame } from '../stomp/stomp-encoder';
import { getStompHeader, STOMP_VERSIONS, type StompEvent, type StompFrame } from '../stomp/stomp-frame';

/**
 * Fuzz targets for the two decoders, shared by the coverage-guided campaign (coverage-fuzzer.ts,
 * `npm run fuzz`) and the corpus replay test that CI runs (fuzz-corpus.test.ts). Each takes one
 * input and throws a FuzzFinding (or whatever escaped the decoder) when a property does not hold:
 *
 * - the decoder throws nothing but a ProtocolError (its documented error) on any bytes;
 * - the stream gives the same frames and the same error code whether it arrives in one chunk or
 *   split into chunks (sizes drawn from the input's second byte);
 * - every decoded frame that the encoder accepts decodes back to itself.
 *
 * Input layout: byte 0 selects decoder options, byte 1 seeds the chunking, the rest is the stream.
 */
export interface FuzzTarget {
  name: string;
  run(input: Buffer): void;
  /** Valid inputs to start a campaign from. */
  seeds(): Buffer[];
  /** Tokens the mutator inserts (libFuzzer's dictionary). */
  dictionary: Buffer[];
}

/** A property of a decoder does not hold for an input. */
export class FuzzFinding extends Error {
  override name = 'FuzzFinding';
}

/** Deterministic chunk boundaries for `length` bytes from a one-byte seed (0: one chunk). */
export function chunkBoundaries(length: number, seed: number): number[] {
  const cuts: number[] = [];
  if (seed === 0 || length === 0) return cuts;
  // xorshift32 seeded from the byte; chunk sizes 1..(seed % 16 + 1), or single bytes for seed 255.
  let s = (seed * 0x9e3779b1) >>> 0 || 1;
  const widest = seed === 255 ? 1 : (seed % 16) + 1;
  let at = 0;
  for (;;) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    at += 1 + (s % widest);
    if (at >= length) return cuts;
    cuts.push(at);
  }
}

function split(stream: Buffer, seed: number): Buffer[] {
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const cut of chunkBoundaries(stream.length, seed)) {
    chunks.push(stream.subarray(prev, cut));
    prev = cut;
  }
  chunks.push(stream.subarray(prev));
  return chunks;
}

interface Outcome<T> {
  items: T[];
  error: ProtocolError | null;
}

/** Feed `chunks`; only a ProtocolError may come out (anything else is rethrown as a finding). */
function drive<T>(chunks: Buffer[], pushEach: (chunk: Buffer, on: (item: T) => void) => void): Outcome<T> {
  const items: T[] = [];
  try {
    for (const chunk of chunks) pushEach(chunk, (item) => items.push(item));
  } catch (err) {
    if (err instanceof ProtocolError && KeelError.isInstance(err)) return { items, error: err };
    throw err;
  }
  return { items, error: null };
}

function sameOutcome<T>(whole: Outcome<T>, pieces: Outcome<T>, what: string): void {
  if (!isDeepStrictEqual(whole.items, pieces.items)) {
    throw new FuzzFinding(`${what}: split input decodes to other items than the whole input`);
  }
  if ((whole.error === null) !== (pieces.error === null) || whole.error?.code !== pieces.error?.code) {
    throw new FuzzFinding(
      `${what}: whole input ends with ${whole.error?.code ?? 'no error'}, split input with ${pieces.error?.code ?? 'no error'}`,
    );
  }
}

// ----- STOMP -----------------------------------------------------------------------------------

const SMALL_STOMP_LIMITS: StompDecoderOptions = {
  maxFrameSize: 512,
  maxBodySize: 128,
  maxHeaders: 8,
  maxHeaderLineLength: 64,
};

function stompOptions(flags: number): StompDecoderOptions {
  const version = STOMP_VERSIONS[flags % 3]!;
  return (flags & 0x04) !== 0 ? { version, ...SMALL_STOMP_LIMITS } : { version };
}

function stompRun(input: Buffer): void {
  if (input.length < 2) return;
  const options = stompOptions(input[0]!);
  const stream = input.subarray(2);
  const decode = (chunks: Buffer[]): Outcome<StompEvent> => {
    const decoder = new StompDecoder(options);
    return drive(chunks, (c, on) => decoder.pushEach(c, on));
  };
  const whole = decode([stream]);
  sameOutcome(whole, decode(split(stream, input[1]!)), 'STOMP');

  for (const event of whole.items) {
    if (event.type !== 'frame') continue;
    const frame = event.frame;
    let bytes: Buffer;
    try {
      bytes = encodeStompFrame(frame, { version: options.version });
    } catch (err) {
      if (err instanceof ProtocolError) continue; // a frame the encoder cannot represent: refused
      throw err;
    }
    const again = new StompDecoder({ version: options.version }).push(bytes);
    const expected: StompFrame =
      frame.body.length > 0 && getStompHeader(frame, 'content-length') === undefined
        ? { ...frame, headers: [...frame.headers, ['content-length', String(frame.body.length)]] }
        : frame;
    if (again.length !== 1 || again[0]!.type !== 'frame' || !isDeepStrictEqual(again[0]!.frame, expected)) {
      throw new FuzzFinding(
        `STOMP ${options.version}: ${frame.command} frame does not survive encode → decode`,
      );
    }
  }
}

const stompSeedFrames: StompFrame[] = [
  {
    command: 'CONNECT',
    headers: [
      ['accept-version', '1.0,1.1,1.2'],
      ['host', 'keel'],
      ['login', 'guest'],
      ['passcode', 'guest'],
      ['heart-beat', '10000,10000'],
    ],
    body: Buffer.alloc(0),
  },
  {
    command: 'SEND',
    headers: [
      ['destination', '/queue/a\\b:c'],
      ['receipt', '1'],
      ['persistent', 'true'],
    ],
    body: Buffer.from('hello\0world'),
  },
  {
    command: 'SUBSCRIBE',
    headers: [
      ['id', '0'],
      ['destination', '/topic/x'],
      ['ack', 'client-individual'],
      ['selector', "JMSType = 'a'\r\nb"],
    ],
    body: Buffer.alloc(0),
  },
  { command: 'ACK', headers: [['id', 'm-1']], body: Buffer.alloc(0) },
  {
    command: 'MESSAGE',
    headers: [
      ['message-id', 'm'],
      ['subscription', '0'],
    ],
    body: Buffer.from('x'),
  },
  { command: 'ERROR', headers: [['message', 'bad']], body: Buffer.from('details') },
  { command: 'DISCONNECT', headers: [['receipt', 'bye']], body: Buffer.alloc(0) },
];

function stompSeeds(): Buffer[] {
  const seeds: Buffer[] = [];
  for (let flags = 0; flags < 6; flags++) {
    const { version } = stompOptions(flags);
    const frames: Buffer[] = [];
    for (const f of stompSeedFrames) {
      try {
        frames.push(encodeStompFrame(f, { version }), Buffer.from('\r\n'));
      } catch {
        // not representable in this version
      }
    }
    seeds.push(Buffer.concat([Buffer.from([flags, flags * 37]), ...frames]));
  }
  // A body that ends at its NUL, no content-length.
  seeds.push(Buffer.from('\x02\x00SEND\ndestination:/queue/q\n\nbody\0\n'));
  return seeds;
}

export const stompFuzzTarget: FuzzTarget = {
  name: 'stomp',
  run: stompRun,
  seeds: stompSeeds,
  dictionary: [
    'CONNECT\n',
    'STOMP\n',
    'CONNECTED\n',
    'SEND\n',
    'SUBSCRIBE\n',
    'UNSUBSCRIBE\n',
    'ACK\n',
    'NACK\n',
    'BEGIN\n',
    'COMMIT\n',
    'ABORT\n',
    'DISCONNECT\n',
    'MESSAGE\n',
    'RECEIPT\n',
    'ERROR\n',
    'content-length:',
    'content-type:text/plain\n',
    'destination:/queue/a\n',
    'receipt:1\n',
    'accept-version:1.2\n',
    'heart-beat:0,0\n',
    '\\n',
    '\\r',
    '\\c',
    '\\\\',
    '\\t',
    '\r\n',
    '\n\n',
    '\0',
    ':',
    '999999999999999',
    '0',
    '-1',
  ].map((s) => Buffer.from(s)),
};

// ----- native ----------------------------------------------------------------------------------

const SMALL_NATIVE_MAX_FRAME = 1024;

/**
 * Structural equality of decoded frames. JSON cannot carry -0 (it is sent as 0), so numbers
 * compare with ===; Buffers compare by content. With `subset`, `b` (the original) may hold fields
 * `a` (what came back) lacks: fields the encoder does not know; message properties are data and
 * compare whole.
 */
function sameFrame(a: unknown, b: unknown, subset = false): boolean {
  // A field the decoder does not know keeps whatever JSON.parse made of it, 1e999 → Infinity
  // included, and JSON.stringify writes that as null.
  if (a === null && typeof b === 'number' && !Number.isFinite(b)) return true;
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return isDeepStrictEqual(a, b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const defined = (o: object) =>
    Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] !== undefined);
  const ka = defined(a);
  if (!subset && ka.length !== defined(b).length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    const va = (a as Record<string, unknown>)[k];
    const vb = (b as Record<string, unknown>)[k];
    // Message properties are data: a subset comparison stops above them.
    if (!sameFrame(va, vb, subset && k !== 'properties')) return false;
  }
  return true;
}

function nativeRun(input: Buffer): void {
  if (input.length < 2) return;
  const flags = input[0]!;
  const options = {
    expectProtocolHeader: (flags & 0x01) !== 0,
    maxFrameSize: (flags & 0x02) !== 0 ? SMALL_NATIVE_MAX_FRAME : undefined,
  };
  const stream = input.subarray(2);
  const decode = (chunks: Buffer[]): Outcome<Frame> => {
    const decoder = new FrameDecoder(options);
    return drive(chunks, (c, on) => decoder.pushEach(c, on));
  };
  const whole = decode([stream]);
  sameOutcome(whole, decode(split(stream, input[1]!)), 'native');

  for (const frame of whole.items) {
    // The encoder writes the fields it knows (message.ts fixedShape, compact.ts); a decoded frame
    // may hold more (frame-validation.ts keeps unknown fields: a newer peer may add optional ones).
    // So: every field that comes back equals the original's, and a second trip is a fixpoint.
    for (const compact of [false, true]) {
      const once = roundTrip(frame, compact);
      if (once === null) continue;
      const twice = roundTrip(once.frame, compact);
      if (!sameFrame(once.frame, frame, true) || twice === null || !twice.bytes.equals(once.bytes)) {
        throw new FuzzFinding(
          `native: ${FrameType[frame.type]} frame does not survive encode → decode (${compact ? 'compact' : 'JSON'} header)`,
        );
      }
    }
  }
}

/** Encode and decode again; null when the encoder refuses the frame (e.g. over its maximum size). */
function roundTrip(frame: Frame, compact: boolean): { frame: Frame; bytes: Buffer } | null {
  let bytes: Buffer;
  try {
    bytes = encodeFrame(frame, { compact });
  } catch (err) {
    if (err instanceof ProtocolError) return null;
    throw err;
  }
  const again = new FrameDecoder().push(bytes);
  if (again.length !== 1) throw new FuzzFinding(`native: one encoded frame decodes to ${again.length}`);
  return { frame: again[0]!, bytes };
}

/** A campaign starts from the committed corpus; these seed an empty one. */
const nativeSeedFrames: Frame[] = [
  {
    type: FrameType.Hello,
    channel: 0,
    protocolVersion: 2,
    minProtocolVersion: 1,
    clientId: 'c',
    username: 'u',
    password: 'p',
    heartbeatMs: 10_000,
  },
  { type: FrameType.SessionOpen, channel: 1, transacted: false, ackMode: 'client' } as Frame,
  { type: FrameType.Heartbeat, channel: 0 },
  {
    type: FrameType.Send,
    channel: 1,
    receiptId: 'r1',
    message: {
      destination: 'queue://orders',
      persistent: true,
      priority: 4,
      timestamp: 1,
      expiration: 0,
      messageId: 'm1',
      correlationId: 'c',
      replyTo: 'queue://reply',
      type: 't',
      producerId: 'p',
      producerSeq: 3,
      brokerPath: ['b1'],
      properties: { a: 1, b: 'x', c: true, d: null, e: 1.5 },
      body: Buffer.from('hello'),
    },
  },
  { type: FrameType.Ack, channel: 1, consumerId: 'k', messageIds: ['m1', 'm2'] } as Frame,
  { type: FrameType.Receipt, channel: 1, receiptId: 'r1' },
];

function nativeSeeds(): Buffer[] {
  const seeds: Buffer[] = [];
  for (const compact of [false, true]) {
    const frames: Buffer[] = [];
    for (const f of nativeSeedFrames) {
      try {
        frames.push(encodeFrame(f, { compact }));
      } catch {
        // a seed the encoder refuses is left out
      }
    }
    for (const [i, bytes] of frames.entries())
      seeds.push(Buffer.concat([Buffer.from([compact ? 0 : 2, i]), bytes]));
    seeds.push(Buffer.concat([Buffer.from([1, 3]), PROTOCOL_HEADER, ...frames]));
  }
  return seeds;
}

export const nativeFuzzTarget: FuzzTarget = {
  name: 'native',
  run: nativeRun,
  seeds: nativeSeeds,
  dictionary: [
    PROTOCOL_HEADER,
    Buffer.from('KEEL\0'),
    Buffer.from([0xce]),
    Buffer.from([0x80, 0, 0, 0]),
    Buffer.from([0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0, 0, 0, 0]),
    ...Object.values(FrameType)
      .filter((v): v is number => typeof v === 'number')
      .map((t) => Buffer.from([t, 0, 0])),
    ...[
      '{}',
      '"type"',
      '"message":{',
      '"destination":"queue://q"',
      '"properties":{',
      '"__proto__":',
      '"constructor":',
      '"body"',
      'null',
      'true',
      '1e999',
      '-0',
      '"\\ud800"',
      '[]',
      '"receiptId":"r"',
      '"consumerId":"c"',
      '"messageIds":[',
      '"channel":',
      '"priority":9',
      '"persistent":true',
    ].map((s) => Buffer.from(s)),
  ],
};

export const FUZZ_TARGETS: Record<string, FuzzTarget> = {
  stomp: stompFuzzTarget,
  native: nativeFuzzTarget,
};
