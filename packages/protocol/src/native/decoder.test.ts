import fc from 'fast-check';
import { InvalidArgumentError, KeelError, ProtocolError } from '../errors';
import type { Message, Properties } from '../message';
import { SAMPLE_FRAMES } from './__tests__/sample-frames';
import { COMPACT_HEADER_FLAG, hasCompactForm } from './compact';
import { checkProtocolHeader, FrameDecoder } from './decoder';
import { encodeFrame, HEARTBEAT_FRAME_BYTES } from './encoder';
import { FRAME_END, type Frame, FrameType, PROTOCOL_HEADER } from './frames';
import { negotiateProtocolVersion } from './negotiate-version';

function decodeChunks(chunks: Buffer[], options?: ConstructorParameters<typeof FrameDecoder>[0]): Frame[] {
  const decoder = new FrameDecoder(options);
  const out: Frame[] = [];
  for (const c of chunks) out.push(...decoder.push(c));
  expect(decoder.bufferedBytes).toBe(0);
  return out;
}

/** A raw frame with a hand-made JSON header and body, bypassing the encoder's checks. */
function rawFrame(
  type: number,
  channel: number,
  json: string,
  body = Buffer.alloc(0),
  end = FRAME_END,
): Buffer {
  const header = Buffer.from(json, 'utf8');
  const buf = Buffer.alloc(7 + 4 + header.length + body.length + 1);
  buf[0] = type;
  buf.writeUInt16BE(channel, 1);
  buf.writeUInt32BE(4 + header.length + body.length, 3);
  buf.writeUInt32BE(header.length, 7);
  header.copy(buf, 11);
  body.copy(buf, 11 + header.length);
  buf[buf.length - 1] = end;
  return buf;
}

function expectProtocolError(fn: () => unknown, code: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).code).toBe(code);
  expect((caught as ProtocolError).message).toMatch(message);
}

const ALL = Buffer.concat(SAMPLE_FRAMES.map((f) => encodeFrame(f)));
const ALL_HEX = ALL.toString('hex');

/** Cheap equality for the loops below (jest's deep equality is slow): re-encode and compare bytes. */
function expectAllSamples(frames: Frame[]): void {
  expect(frames).toHaveLength(SAMPLE_FRAMES.length);
  expect(Buffer.concat(frames.map((f) => encodeFrame(f))).toString('hex')).toBe(ALL_HEX);
}

describe('native codec round trip', () => {
  it('covers every frame type', () => {
    const types = new Set(SAMPLE_FRAMES.map((f) => f.type));
    const all = Object.values(FrameType).filter((v) => typeof v === 'number');
    expect(types.size).toBe(all.length);
  });

  it.each(SAMPLE_FRAMES.map((f) => [FrameType[f.type], f] as const))('round-trips %s', (_name, frame) => {
    const bytes = encodeFrame(frame);
    expect(bytes[0]).toBe(frame.type);
    expect(bytes.readUInt16BE(1)).toBe(frame.channel);
    expect(bytes.readUInt32BE(3)).toBe(bytes.length - 8);
    expect(bytes[bytes.length - 1]).toBe(FRAME_END);
    expect(new FrameDecoder().push(bytes)).toEqual([frame]);
  });

  it('puts message headers in the JSON and the body as raw bytes', () => {
    const send = SAMPLE_FRAMES.find((f) => f.type === FrameType.Send)!;
    const bytes = encodeFrame(send);
    const headerLength = bytes.readUInt32BE(7);
    const json = JSON.parse(bytes.toString('utf8', 11, 11 + headerLength));
    expect(json.type).toBeUndefined();
    expect(json.channel).toBeUndefined();
    expect(json.message.body).toBeUndefined();
    expect(json.message.destination).toBe('queue://orders');
    expect(bytes.subarray(11 + headerLength, bytes.length - 1)).toEqual(
      Buffer.from([0, 1, 2, 0xce, 0xff, 0]),
    );
  });

  it('decodes many frames from one chunk', () => {
    expect(decodeChunks([ALL])).toEqual(SAMPLE_FRAMES);
  });

  it('decodes frames split at every byte offset', () => {
    expect(decodeChunks([ALL.subarray(0, 100), ALL.subarray(100)])).toEqual(SAMPLE_FRAMES);
    for (let i = 0; i <= ALL.length; i++) {
      expectAllSamples(decodeChunks([ALL.subarray(0, i), ALL.subarray(i)]));
    }
  });

  it('decodes frames fed one byte at a time', () => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < ALL.length; i++) chunks.push(ALL.subarray(i, i + 1));
    expect(decodeChunks(chunks)).toEqual(SAMPLE_FRAMES);
  });

  it('decodes frames split at every pair of offsets (3 pieces)', () => {
    const bytes = Buffer.concat(SAMPLE_FRAMES.slice(9, 12).map((f) => encodeFrame(f)));
    const hex = bytes.toString('hex');
    for (let i = 0; i <= bytes.length; i += 5) {
      for (let j = i; j <= bytes.length; j += 13) {
        const frames = decodeChunks([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
        expect(frames).toHaveLength(3);
        expect(Buffer.concat(frames.map((f) => encodeFrame(f))).toString('hex')).toBe(hex);
      }
    }
  });

  it('gives bodies their own memory, not a view of the input chunk', () => {
    const bytes = encodeFrame(SAMPLE_FRAMES.find((f) => f.type === FrameType.Send)!);
    const [frame] = new FrameDecoder().push(bytes);
    bytes.fill(0);
    expect((frame as { message: Message }).message.body).toEqual(Buffer.from([0, 1, 2, 0xce, 0xff, 0]));
  });

  it('has a precomputed heartbeat', () => {
    expect(HEARTBEAT_FRAME_BYTES).toEqual(encodeFrame({ type: FrameType.Heartbeat, channel: 0 }));
    expect(HEARTBEAT_FRAME_BYTES.length).toBe(14);
    expect(new FrameDecoder().push(HEARTBEAT_FRAME_BYTES)).toEqual([
      { type: FrameType.Heartbeat, channel: 0 },
    ]);
  });
});

describe('protocol header', () => {
  it('checks the 8-byte header and returns its version', () => {
    expect(checkProtocolHeader(PROTOCOL_HEADER)).toEqual({ major: 2, minor: 0, revision: 0 });
  });

  it('rejects an HTTP request or a STOMP frame on the native port', () => {
    expectProtocolError(
      () => checkProtocolHeader(Buffer.from('GET / HTTP/1.1\r\n')),
      'PROTOCOL_ERROR',
      /GET \/ HT/,
    );
    expectProtocolError(() => checkProtocolHeader(Buffer.from('CONNECT\n')), 'PROTOCOL_ERROR', /not a Keel/);
    expectProtocolError(() => checkProtocolHeader(Buffer.from('KEEL')), 'PROTOCOL_ERROR', /8 bytes/);
  });

  it('is consumed by the decoder with expectProtocolHeader, split at every offset', () => {
    const bytes = Buffer.concat([PROTOCOL_HEADER, ALL]);
    for (let i = 0; i <= bytes.length; i++) {
      const decoder = new FrameDecoder({ expectProtocolHeader: true });
      const frames = [...decoder.push(bytes.subarray(0, i)), ...decoder.push(bytes.subarray(i))];
      expectAllSamples(frames);
      expect(decoder.protocolHeader).toEqual({ major: 2, minor: 0, revision: 0 });
    }
  });

  it('fails the decoder when the header is wrong', () => {
    const decoder = new FrameDecoder({ expectProtocolHeader: true });
    expect(decoder.push(Buffer.from('STO'))).toEqual([]);
    expectProtocolError(
      () => decoder.push(Buffer.from('MP\naccept-version:1.2\n\n\0')),
      'PROTOCOL_ERROR',
      /STOMP/,
    );
  });
});

describe('malformed frames', () => {
  const hb = () => rawFrame(FrameType.Heartbeat, 0, '{}');

  it('rejects an oversized length before allocating it', () => {
    const head = Buffer.from([FrameType.Send, 0, 1, 0xff, 0xff, 0xff, 0xff]);
    expectProtocolError(
      () => new FrameDecoder().push(head),
      'FRAME_TOO_LARGE',
      /4294967303 bytes exceeds .* 4194304/,
    );
    // Also when the length arrives split over chunks.
    const d = new FrameDecoder({ maxFrameSize: 100 });
    d.push(head.subarray(0, 4));
    expectProtocolError(() => d.push(head.subarray(4)), 'FRAME_TOO_LARGE', /maximum frame size of 100/);
  });

  it('honours maxFrameSize exactly', () => {
    const bytes = rawFrame(FrameType.Receipt, 1, '{"receiptId":"r"}');
    expect(bytes.length).toBe(29);
    expect(new FrameDecoder({ maxFrameSize: bytes.length }).push(bytes)).toHaveLength(1);
    expectProtocolError(
      () => new FrameDecoder({ maxFrameSize: bytes.length - 1 }).push(bytes),
      'FRAME_TOO_LARGE',
      /29 bytes/,
    );
    expect(() => new FrameDecoder({ maxFrameSize: 3 })).toThrow(InvalidArgumentError);
  });

  it('rejects a wrong end marker', () => {
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(3, 0, '{}', undefined, 0xcd)),
      'PROTOCOL_ERROR',
      /0xCE \(got 0xcd\)/,
    );
  });

  it('rejects an unknown frame type as soon as its first byte arrives with the header', () => {
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(0, 0, '{}')),
      'PROTOCOL_ERROR',
      /unknown frame type 0/,
    );
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(99, 0, '{}')),
      'PROTOCOL_ERROR',
      /unknown frame type 99/,
    );
  });

  it('rejects invalid JSON and non-object headers', () => {
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(3, 0, '{"a":')),
      'PROTOCOL_ERROR',
      /not valid JSON/,
    );
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(3, 0, '[1]')),
      'PROTOCOL_ERROR',
      /not an object/,
    );
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(3, 0, 'null')),
      'PROTOCOL_ERROR',
      /not an object/,
    );
  });

  it('ignores header fields it does not know (a newer peer may add optional ones)', () => {
    const [frame] = new FrameDecoder().push(
      rawFrame(FrameType.Unsubscribe, 3, '{"consumerId":"c1","futureOption":true,"x":{"y":1}}'),
    );
    expect(frame).toMatchObject({ type: FrameType.Unsubscribe, channel: 3, consumerId: 'c1' });
  });

  it('rejects a JSON length beyond the payload and a payload too short', () => {
    const bad = hb();
    bad.writeUInt32BE(50, 7);
    expectProtocolError(() => new FrameDecoder().push(bad), 'PROTOCOL_ERROR', /header length 50 exceeds/);
    const tiny = Buffer.from([3, 0, 0, 0, 0, 0, 1, 0, FRAME_END]);
    expectProtocolError(() => new FrameDecoder().push(tiny), 'PROTOCOL_ERROR', /too short/);
  });

  it.each([
    [FrameType.Receipt, 1, '{}', /"receiptId" must be a string/],
    [FrameType.Receipt, 1, '{"receiptId":5}', /"receiptId" must be a string/],
    [FrameType.Credit, 1, '{"consumerId":"c","credit":-1}', /"credit" must be a non-negative integer/],
    [FrameType.Credit, 1, '{"consumerId":"c","credit":1.5}', /"credit" must be a non-negative integer/],
    [FrameType.Hello, 1, '{"protocolVersion":1,"heartbeatMs":0}', /channel 0, not 1/],
    [FrameType.Receipt, 1, '{"receiptId":"r","more":{}}', /"more" must be an array/],
    [FrameType.Receipt, 1, '{"receiptId":"r","more":[{"messageId":"m"}]}', /"receiptId" must be a string/],
    [FrameType.Hello, 0, '{"protocolVersion":"1","heartbeatMs":0}', /"protocolVersion"/],
    [FrameType.SessionOpen, 1, '{"transacted":false,"ackMode":"dups-ok"}', /"ackMode"/],
    [
      FrameType.Error,
      1,
      '{"code":"X","message":"m","retryable":"no","fatal":true}',
      /"retryable" must be a boolean/,
    ],
    [FrameType.Ack, 1, '{"consumerId":"c","messageIds":["a",1]}', /"messageIds" must be an array of strings/],
    [FrameType.TxOutcome, 1, '{"txId":"t","outcome":"maybe"}', /"outcome"/],
    [
      FrameType.Welcome,
      0,
      '{"protocolVersion":1,"connectionId":"c","clientId":"c","brokers":[],"heartbeatMs":0,"maxFrameSize":9,"broker":{"name":"b","cluster":"c","role":"boss","epoch":1,"version":"1"}}',
      /role/,
    ],
    [FrameType.Request, 1, '{"receiptId":"r","op":"x","args":{"a":{"b":1}}}', /argument "a"/],
    [FrameType.Response, 1, '{"receiptId":"r"}', /"result" is missing/],
    [
      FrameType.Send,
      1,
      '{"message":{"destination":"queue://a","persistent":true,"priority":10,"timestamp":1,"expiration":0,"properties":{}}}',
      /"priority" must be an integer 0..9/,
    ],
    [
      FrameType.Send,
      1,
      '{"message":{"destination":"queue://a","persistent":true,"priority":4,"timestamp":null,"expiration":0,"properties":{}}}',
      /"timestamp" must be a finite number/,
    ],
    [
      FrameType.Send,
      1,
      '{"message":{"destination":"queue://a","persistent":true,"priority":4,"timestamp":1,"expiration":0,"properties":{"x":[1]}}}',
      /property "x"/,
    ],
    [
      FrameType.Send,
      1,
      '{"message":{"persistent":true,"priority":4,"timestamp":1,"expiration":0,"properties":{}}}',
      /"destination" must be a string/,
    ],
    [FrameType.Send, 1, '{"message":"hello"}', /"message" must be an object/],
    [
      FrameType.Message,
      1,
      '{"consumerId":"c","message":{"destination":"queue://a","persistent":true,"priority":4,"timestamp":1,"expiration":0,"properties":{},"deliveryCount":0,"redelivered":false}}',
      /"messageId" must be a string/,
    ],
  ])('rejects type %i channel %i header %s', (type, channel, json, message) => {
    expectProtocolError(
      () => new FrameDecoder().push(rawFrame(type, channel, json)),
      'PROTOCOL_ERROR',
      message,
    );
  });

  it('rejects body bytes on frames other than SEND and MESSAGE', () => {
    const bytes = rawFrame(FrameType.Receipt, 1, '{"receiptId":"r"}', Buffer.from('xyz'));
    expectProtocolError(
      () => new FrameDecoder().push(bytes),
      'PROTOCOL_ERROR',
      /only SEND and MESSAGE .* 3 bytes/,
    );
  });

  it('stays failed after an error', () => {
    const d = new FrameDecoder();
    expect(() => d.push(rawFrame(99, 0, '{}'))).toThrow(ProtocolError);
    expectProtocolError(() => d.push(hb()), 'PROTOCOL_ERROR', /unknown frame type 99/);
  });

  it('pushEach delivers the frames before a malformed one', () => {
    const d = new FrameDecoder();
    const seen: Frame[] = [];
    const bytes = Buffer.concat([hb(), hb(), rawFrame(3, 0, '{"a":')]);
    expect(() => d.pushEach(bytes, (f) => seen.push(f))).toThrow(/not valid JSON/);
    expect(seen).toHaveLength(2);
  });

  it('lets an error thrown by the frame callback through unchanged and fails the decoder', () => {
    const d = new FrameDecoder();
    const boom = new Error('boom');
    expect(() =>
      d.pushEach(hb(), () => {
        throw boom;
      }),
    ).toThrow(boom);
    expect(() => d.push(hb())).toThrow(ProtocolError);
  });
});

describe('encoder checks', () => {
  it('refuses frames above maxFrameSize, unknown types and bad channels', () => {
    const send = SAMPLE_FRAMES.find((f) => f.type === FrameType.Send)!;
    const size = encodeFrame(send).length;
    expect(encodeFrame(send, { maxFrameSize: size })).toHaveLength(size);
    expectProtocolError(() => encodeFrame(send, { maxFrameSize: size - 1 }), 'FRAME_TOO_LARGE', /exceeds/);
    expectProtocolError(
      () => encodeFrame({ type: 77, channel: 0 } as unknown as Frame),
      'PROTOCOL_ERROR',
      /unknown type 77/,
    );
    expectProtocolError(
      () => encodeFrame({ type: FrameType.Receipt, channel: 70000, receiptId: 'r' }),
      'PROTOCOL_ERROR',
      /channel 70000/,
    );
  });
});

describe('version negotiation', () => {
  it('picks the highest common version or fails with UNSUPPORTED_VERSION', () => {
    expect(negotiateProtocolVersion({ protocolVersion: 1 })).toBe(1);
    expect(negotiateProtocolVersion({ protocolVersion: 5, minProtocolVersion: 1 }, { min: 1, max: 3 })).toBe(
      3,
    );
    expect(negotiateProtocolVersion({ protocolVersion: 2 }, { min: 1, max: 3 })).toBe(2);
    expectProtocolError(
      () => negotiateProtocolVersion({ protocolVersion: 5, minProtocolVersion: 4 }, { min: 1, max: 3 }),
      'UNSUPPORTED_VERSION',
      /client speaks 4..5, broker 1..3/,
    );
    expectProtocolError(
      () => negotiateProtocolVersion({ protocolVersion: 1 }, { min: 2, max: 3 }),
      'UNSUPPORTED_VERSION',
      /no common/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const propertyValue = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
  fc.boolean(),
  fc.constant(null),
);
const properties: fc.Arbitrary<Properties> = fc.dictionary(fc.string(), propertyValue, { maxKeys: 8 });

const message = fc.record(
  {
    messageId: fc.string(),
    destination: fc.string({ minLength: 1 }),
    persistent: fc.boolean(),
    priority: fc.integer({ min: 0, max: 9 }),
    timestamp: fc.nat(),
    expiration: fc.nat(),
    correlationId: fc.string(),
    replyTo: fc.string(),
    type: fc.string(),
    producerId: fc.string(),
    producerSeq: fc.nat(),
    brokerPath: fc.array(fc.string(), { maxLength: 3 }),
    properties,
    body: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  },
  {
    requiredKeys: ['destination', 'persistent', 'priority', 'timestamp', 'expiration', 'properties', 'body'],
  },
);

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({
    type: fc.constant(FrameType.Send as const),
    channel: fc.integer({ min: 0, max: 0xffff }),
    receiptId: fc.string(),
    message,
  }),
  fc.record({
    type: fc.constant(FrameType.Message as const),
    channel: fc.integer({ min: 0, max: 0xffff }),
    consumerId: fc.string(),
    message: fc
      .record({ m: message, messageId: fc.string(), deliveryCount: fc.nat(), redelivered: fc.boolean() })
      .map(({ m, ...rest }) => ({ ...m, ...rest })),
  }),
  fc.record({
    type: fc.constant(FrameType.Ack as const),
    channel: fc.integer({ min: 0, max: 0xffff }),
    consumerId: fc.string(),
    messageIds: fc.array(fc.string()),
  }),
  fc.constantFrom(...SAMPLE_FRAMES),
);

describe('native codec properties', () => {
  /** Both header forms: JSON (version 1) and compact (version 2, compact.ts). */
  const FORMS = [
    ['JSON', {}],
    ['compact', { compact: true }],
  ] as const;

  it.each(FORMS)('round-trips random frames (%s headers) split at random offsets', (_form, opts) => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (frames, cuts) => {
          const bytes = Buffer.concat(frames.map((f) => encodeFrame(f, opts)));
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const p of points) {
            chunks.push(bytes.subarray(prev, p));
            prev = p;
          }
          chunks.push(bytes.subarray(prev));
          expect(decodeChunks(chunks)).toEqual(frames);
        },
      ),
      { numRuns: 300 },
    );
  });

  function onlyProtocolErrors(
    chunks: Buffer[],
    options?: ConstructorParameters<typeof FrameDecoder>[0],
  ): void {
    const d = new FrameDecoder(options);
    try {
      for (const c of chunks) d.push(c);
    } catch (err) {
      if (!(err instanceof ProtocolError) || !KeelError.isInstance(err)) throw err;
    }
  }

  it('never throws anything but ProtocolError on garbage', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
          { maxLength: 8 },
        ),
        fc.boolean(),
        (chunks, expectHeader) =>
          onlyProtocolErrors(chunks, { maxFrameSize: 4096, expectProtocolHeader: expectHeader }),
      ),
      { numRuns: 1000 },
    );
  });

  it.each(FORMS)(
    'never throws anything but ProtocolError on valid frames (%s headers) with corrupted bytes',
    (_form, opts) => {
      fc.assert(
        fc.property(
          fc.array(frameArb, { minLength: 1, maxLength: 3 }),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
          (frames, flips) => {
            const bytes = Buffer.concat(frames.map((f) => encodeFrame(f, opts)));
            for (const [at, value] of flips) bytes[at % bytes.length] = value;
            onlyProtocolErrors([bytes]);
          },
        ),
        { numRuns: 1000 },
      );
    },
  );

  it('never throws anything but ProtocolError on well-framed random JSON headers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 23 }),
        fc.integer({ min: 0, max: 3 }),
        fc.jsonValue(),
        (type, channel, json) => {
          onlyProtocolErrors([rawFrame(type, channel, JSON.stringify(json) ?? 'null')]);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Compact headers (protocol version 2)

describe('compact headers (version 2)', () => {
  const COMPACT = { compact: true } as const;

  /** A compact frame's raw headerLength field has the top bit set. */
  function isCompact(bytes: Buffer): boolean {
    return bytes.readUInt32BE(7) >= COMPACT_HEADER_FLAG;
  }

  it('encodes SEND, MESSAGE, ACK and RECEIPT compact, every other frame as JSON, and decodes both', () => {
    for (const f of SAMPLE_FRAMES) {
      const bytes = encodeFrame(f, COMPACT);
      expect(isCompact(bytes)).toBe(hasCompactForm(f.type));
      expect(decodeChunks([bytes])).toEqual([f]);
    }
  });

  it('is smaller than the JSON header for a delivered message', () => {
    const m = SAMPLE_FRAMES.find((f) => f.type === FrameType.Message)!;
    expect(encodeFrame(m, COMPACT).length).toBeLessThan(encodeFrame(m).length);
  });

  it('decodes compact frames split at every byte offset', () => {
    const bytes = Buffer.concat(SAMPLE_FRAMES.map((f) => encodeFrame(f, COMPACT)));
    for (let cut = 0; cut <= bytes.length; cut++) {
      expectAllSamples(decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]));
    }
  });

  it('falls back to JSON for what it cannot carry (a string over 65,535 bytes)', () => {
    const long: Frame = { type: FrameType.Receipt, channel: 1, receiptId: 'r'.repeat(70_000) };
    const bytes = encodeFrame(long, COMPACT);
    expect(isCompact(bytes)).toBe(false);
    expect(decodeChunks([bytes])).toEqual([long]);
  });

  it('honours maxFrameSize like the JSON form', () => {
    const m = SAMPLE_FRAMES.find((f) => f.type === FrameType.Message)!;
    const size = encodeFrame(m, COMPACT).length;
    expect(encodeFrame(m, { compact: true, maxFrameSize: size }).length).toBe(size);
    expectProtocolError(
      () => encodeFrame(m, { compact: true, maxFrameSize: size - 1 }),
      'FRAME_TOO_LARGE',
      /exceeds the maximum frame size/,
    );
  });

  /** A frame with a hand-made compact header. */
  function compactFrame(type: number, header: Buffer, body = Buffer.alloc(0)): Buffer {
    const buf = Buffer.alloc(7 + 4 + header.length + body.length + 1);
    buf[0] = type;
    buf.writeUInt16BE(1, 1);
    buf.writeUInt32BE(4 + header.length + body.length, 3);
    buf.writeUInt32BE((COMPACT_HEADER_FLAG | header.length) >>> 0, 7);
    header.copy(buf, 11);
    body.copy(buf, 11 + header.length);
    buf[buf.length - 1] = FRAME_END;
    return buf;
  }

  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  const u8 = (v: number): Buffer => Buffer.from([v]);
  const u16 = (v: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    return b;
  };
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  const f64 = (v: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(v);
    return b;
  };
  /** A SEND header: no receipt, a persistent message with the given priority, timestamp and properties. */
  const sendHeader = (priority: number, timestamp: number, props?: string): Buffer =>
    Buffer.concat([
      u8(0),
      u16(props === undefined ? 1 : 1 | (1 << 10)),
      u8(priority),
      f64(timestamp),
      f64(0),
      str('queue://q'),
      ...(props === undefined ? [] : [u32(Buffer.byteLength(props)), Buffer.from(props)]),
    ]);

  it('decodes a hand-made SEND header', () => {
    const [frame] = decodeChunks([
      compactFrame(FrameType.Send, sendHeader(4, 1000, '{"a":1}'), Buffer.from('hi')),
    ]);
    expect(frame).toMatchObject({
      type: FrameType.Send,
      channel: 1,
      message: {
        destination: 'queue://q',
        persistent: true,
        priority: 4,
        timestamp: 1000,
        expiration: 0,
        properties: { a: 1 },
      },
    });
    expect((frame as { message: Message }).message.body.toString()).toBe('hi');
  });

  it.each([
    ['truncated', FrameType.Send, sendHeader(4, 1000).subarray(0, 12), /compact header is truncated/],
    [
      'trailing bytes',
      FrameType.Receipt,
      Buffer.concat([u8(0), str('r1'), u8(7)]),
      /1 bytes after its last field/,
    ],
    ['unknown frame flags', FrameType.Receipt, Buffer.concat([u8(0x80), str('r1')]), /unknown flags 0x80/],
    ['unknown message flags', FrameType.Send, Buffer.concat([u8(0), u16(0x8001)]), /unknown flags 0x8001/],
    ['priority 10', FrameType.Send, sendHeader(10, 1000), /"priority" must be an integer 0..9/],
    ['a NaN timestamp', FrameType.Send, sendHeader(4, Number.NaN), /"timestamp" is not a finite number/],
    [
      'nested property values',
      FrameType.Send,
      sendHeader(4, 1, '{"a":{"b":1}}'),
      /property "a" must be a string/,
    ],
    ['properties that are not JSON', FrameType.Send, sendHeader(4, 1, '{a'), /properties are not valid JSON/],
    [
      'a MESSAGE without messageId',
      FrameType.Message,
      Buffer.concat([u8(0), str('c1'), u32(0), sendHeader(4, 1).subarray(1)]),
      /lacks "messageId"/,
    ],
    [
      'an ACK count beyond the header',
      FrameType.Ack,
      Buffer.concat([u8(0), str('c1'), u32(0xffffffff)]),
      /truncated/,
    ],
    [
      'a RECEIPT count beyond the header',
      FrameType.Receipt,
      Buffer.concat([u8(2), str('r1'), u32(1000)]),
      /truncated/,
    ],
    ['a compact HELLO', FrameType.Hello, Buffer.concat([u8(0), str('x')]), /no compact header form/],
  ])('rejects %s', (_what, type, header, message) => {
    expectProtocolError(() => new FrameDecoder().push(compactFrame(type, header)), 'PROTOCOL_ERROR', message);
  });

  it('rejects body bytes on a compact ACK or RECEIPT', () => {
    expectProtocolError(
      () =>
        new FrameDecoder().push(
          compactFrame(FrameType.Receipt, Buffer.concat([u8(0), str('r1')]), Buffer.from('x')),
        ),
      'PROTOCOL_ERROR',
      /only SEND and MESSAGE frames carry a body/,
    );
  });
});
