import fc from 'fast-check';
import { KeelError, ProtocolError } from './errors';
import { nativeFuzzTarget, stompFuzzTarget } from './fuzz/fuzz-targets';
import { SAMPLE_FRAMES } from './native/__tests__/sample-frames';
import { FrameDecoder } from './native/decoder';
import { encodeFrame } from './native/encoder';
import { type Frame, FrameType, PROTOCOL_HEADER, type SendFrame } from './native/frames';
import { StompDecoder, type StompDecoderOptions } from './stomp/stomp-decoder';
import { encodeStompFrame } from './stomp/stomp-encoder';
import { getStompHeader, type StompEvent, type StompFrame, type StompVersion } from './stomp/stomp-frame';

/**
 * Properties of both codecs that CI checks on every run (issue #23.5), besides the per-codec
 * properties beside each decoder: a valid stream decodes to the same frames split at every byte;
 * encode → decode is the identity (STOMP 1.2 header escaping, content-length bodies with NULs,
 * both native header forms); arbitrary bytes give nothing but a ProtocolError, the same outcome
 * however they are chunked, and never more buffered bytes than the frame limit; decoding is linear
 * (a frame fed one byte at a time finishes). The fuzz targets (fuzz-targets.ts) run here on
 * fast-check's inputs as well as in the coverage-guided campaign.
 */

type Chunks = Buffer[];

/** Every way to cut `bytes` in two, plus one byte at a time. */
function everySplit(bytes: Buffer): Chunks[] {
  const out: Chunks[] = [];
  for (let i = 0; i <= bytes.length; i++) out.push([bytes.subarray(0, i), bytes.subarray(i)]);
  out.push(Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)));
  return out;
}

function randomChunks(bytes: Buffer, cuts: number[]): Chunks {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Chunks = [];
  let prev = 0;
  for (const p of points) {
    chunks.push(bytes.subarray(prev, p));
    prev = p;
  }
  chunks.push(bytes.subarray(prev));
  return chunks;
}

interface Outcome<T> {
  items: T[];
  code: string | null;
  maxBuffered: number;
}

/** Feed chunks through pushEach; anything but a ProtocolError fails the property. */
function outcome<T>(
  decoder: { pushEach(c: Buffer, on: (item: T) => void): void; bufferedBytes: number },
  chunks: Chunks,
): Outcome<T> {
  const items: T[] = [];
  let maxBuffered = 0;
  try {
    for (const c of chunks) {
      decoder.pushEach(c, (item) => items.push(item));
      maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
    }
  } catch (err) {
    if (!(err instanceof ProtocolError) || !KeelError.isInstance(err)) throw err;
    return { items, code: err.code, maxBuffered };
  }
  return { items, code: null, maxBuffered };
}

// ----- STOMP -----------------------------------------------------------------------------------

/** Characters that STOMP 1.2 escapes (section "Value Encoding") and friends, to stress escaping. */
const stompText = fc.string({
  unit: fc.constantFrom('\r', '\n', ':', '\\', 'a', 'Z', ' ', 'é', '€', '\u{1F600}', 'c', 'r', 'n', '\0'),
  maxLength: 10,
});

const stompFrame12: fc.Arbitrary<StompFrame> = fc
  .record({
    command: fc.constantFrom('SEND', 'MESSAGE', 'ERROR', 'SUBSCRIBE', 'ACK', 'NACK', 'RECEIPT', 'BEGIN'),
    headers: fc.array(fc.tuple(stompText, stompText), { maxLength: 6 }),
    body: fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
  })
  .map(({ command, headers, body }) => {
    // A non-empty name; content-length is the encoder's to add.
    const h = headers.map(([n, v]): [string, string] => [`x${n}`, v]);
    const hasBody = command === 'SEND' || command === 'MESSAGE' || command === 'ERROR';
    return { command, headers: h, body: hasBody ? body : Buffer.alloc(0) };
  });

function withContentLength(f: StompFrame): StompFrame {
  return f.body.length > 0 && getStompHeader(f, 'content-length') === undefined
    ? { ...f, headers: [...f.headers, ['content-length', String(f.body.length)]] }
    : f;
}

const stompStream = fc
  .array(fc.tuple(stompFrame12, fc.constantFrom('', '\n', '\r\n', '\n\n')), { minLength: 1, maxLength: 4 })
  .map((parts) => ({
    frames: parts.map(([f]) => f),
    bytes: Buffer.concat(parts.flatMap(([f, eol]) => [encodeStompFrame(f), Buffer.from(eol)])),
  }));

describe('STOMP codec properties (issue #23.5)', () => {
  it('decodes a valid stream to the same events split at every byte and one byte at a time', () => {
    fc.assert(
      fc.property(stompStream, ({ frames, bytes }) => {
        const whole = outcome<StompEvent>(new StompDecoder(), [bytes]);
        expect(whole.code).toBeNull();
        expect(whole.items.flatMap((e) => (e.type === 'frame' ? [e.frame] : []))).toEqual(
          frames.map(withContentLength),
        );
        for (const chunks of everySplit(bytes)) {
          const split = outcome<StompEvent>(new StompDecoder(), chunks);
          expect(split.code).toBeNull();
          expect(split.items).toEqual(whole.items);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('round-trips STOMP 1.2 header escaping (\\r \\n \\c \\\\) and content-length bodies holding NULs', () => {
    fc.assert(
      fc.property(stompFrame12, (frame) => {
        const bytes = encodeStompFrame(frame);
        const events = new StompDecoder().push(bytes);
        expect(events).toEqual([{ type: 'frame', frame: withContentLength(frame) }]);
      }),
      { numRuns: 1000 },
    );
  });

  it('round-trips STOMP 1.1 headers, CR included: a value ending in CR keeps it (fuzzer finding)', () => {
    const frame: StompFrame = { command: 'SEND', headers: [['a', 'b\r']], body: Buffer.alloc(0) };
    expect(encodeStompFrame(frame, { version: '1.1' }).toString()).toBe('SEND\na:b\r\r\n\n\0');
    fc.assert(
      fc.property(stompFrame12, (f) => {
        const events = new StompDecoder({ version: '1.1' }).push(encodeStompFrame(f, { version: '1.1' }));
        expect(events).toEqual([{ type: 'frame', frame: withContentLength(f) }]);
      }),
      { numRuns: 1000 },
    );
  });

  const limits: StompDecoderOptions = {
    maxFrameSize: 300,
    maxBodySize: 100,
    maxHeaders: 5,
    maxHeaderLineLength: 40,
  };

  it('gives arbitrary bytes only ProtocolErrors, the same outcome whatever the chunking, within the frame limit', () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((a) => Buffer.from(a)),
      // Valid frames with bytes overwritten: garbage that gets past the first checks.
      fc
        .tuple(stompStream, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
        .map(([{ bytes }, flips]) => {
          const copy = Buffer.from(bytes);
          for (const [at, v] of flips) copy[at % copy.length] = v;
          return copy;
        }),
    );
    fc.assert(
      fc.property(
        garbage,
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.constantFrom<StompVersion>('1.0', '1.1', '1.2'),
        (bytes, cuts, version) => {
          const whole = outcome<StompEvent>(new StompDecoder({ ...limits, version }), [bytes]);
          const split = outcome<StompEvent>(
            new StompDecoder({ ...limits, version }),
            randomChunks(bytes, cuts),
          );
          expect(split.items).toEqual(whole.items);
          expect(split.code).toBe(whole.code);
          expect(split.maxBuffered).toBeLessThanOrEqual(limits.maxFrameSize!);
          expect(whole.maxBuffered).toBeLessThanOrEqual(limits.maxFrameSize!);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('holds the fuzz target’s properties on fast-check inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 300 }), (a) =>
        stompFuzzTarget.run(Buffer.from(a)),
      ),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(stompStream, fc.nat(255), fc.nat(255), ({ bytes }, flags, seed) =>
        stompFuzzTarget.run(Buffer.concat([Buffer.from([flags, seed]), bytes])),
      ),
      { numRuns: 300 },
    );
  });

  it('decodes in linear time: a 256 KiB frame fed one byte at a time', () => {
    const body = Buffer.alloc(256 * 1024, 0x61);
    const big = encodeStompFrame({ command: 'SEND', headers: [['destination', '/queue/a']], body });
    const line = Buffer.concat([
      Buffer.from('SEND\nx:'),
      Buffer.alloc(256 * 1024, 0x62),
      Buffer.from('\n\n\0'),
    ]);
    for (const [bytes, options] of [
      [big, {}],
      [line, { maxHeaderLineLength: 1 << 20 }],
    ] as const) {
      const d = new StompDecoder(options);
      let frames = 0;
      for (let i = 0; i < bytes.length; i++) frames += d.push(bytes.subarray(i, i + 1)).length;
      expect(frames).toBe(1);
    }
  });
});

// ----- native ----------------------------------------------------------------------------------

const nativeStream = fc
  .array(fc.tuple(fc.constantFrom(...SAMPLE_FRAMES), fc.boolean()), { minLength: 1, maxLength: 5 })
  .map((parts) => ({
    frames: parts.map(([f]) => f),
    bytes: Buffer.concat(parts.map(([f, compact]) => encodeFrame(f, { compact }))),
  }));

describe('native codec properties (issue #23.5)', () => {
  it('decodes a valid stream (JSON and compact headers) to the same frames split at every byte', () => {
    fc.assert(
      fc.property(nativeStream, fc.boolean(), ({ frames, bytes }, header) => {
        const stream = header ? Buffer.concat([PROTOCOL_HEADER, bytes]) : bytes;
        const whole = outcome<Frame>(new FrameDecoder({ expectProtocolHeader: header }), [stream]);
        expect(whole.code).toBeNull();
        expect(whole.items).toEqual(frames);
        for (const chunks of everySplit(stream)) {
          const split = outcome<Frame>(new FrameDecoder({ expectProtocolHeader: header }), chunks);
          expect(split.code).toBeNull();
          expect(split.items).toEqual(frames);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('refuses numbers JSON.parse reads as Infinity (1e999), as the compact form does (fuzzer finding)', () => {
    const raw = (json: string) => {
      const header = Buffer.from(json);
      const buf = Buffer.alloc(12 + header.length);
      buf[0] = FrameType.Send;
      buf.writeUInt16BE(1, 1);
      buf.writeUInt32BE(4 + header.length, 3);
      buf.writeUInt32BE(header.length, 7);
      header.copy(buf, 11);
      buf[buf.length - 1] = 0xce;
      return buf;
    };
    const base = '"destination":"queue://q","persistent":true,"priority":4';
    for (const [fields, name] of [
      ['"timestamp":1e999,"expiration":0,"properties":{}', '"timestamp"'],
      ['"timestamp":1,"expiration":-1e999,"properties":{}', '"expiration"'],
      ['"timestamp":1,"expiration":0,"producerSeq":1e400,"properties":{}', '"producerSeq"'],
      ['"timestamp":1,"expiration":0,"properties":{"x":-1e999}', 'property "x"'],
    ] as const) {
      const d = new FrameDecoder();
      expect(() => d.push(raw(`{"message":{${base},${fields}}}`))).toThrow(
        expect.objectContaining({ code: 'PROTOCOL_ERROR', message: expect.stringContaining(name) }),
      );
    }
    // The largest finite double still passes.
    const ok = new FrameDecoder().push(
      raw(`{"message":{${base},"timestamp":1.7976931348623157e308,"expiration":0,"properties":{}}}`),
    );
    expect(ok).toHaveLength(1);
  });

  it('gives arbitrary bytes only ProtocolErrors, the same outcome whatever the chunking, within the frame limit', () => {
    const maxFrameSize = 512;
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      fc
        .tuple(nativeStream, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
        .map(([{ bytes }, flips]) => {
          const copy = Buffer.from(bytes);
          for (const [at, v] of flips) copy[at % copy.length] = v;
          return copy;
        }),
    );
    fc.assert(
      fc.property(garbage, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (bytes, cuts, header) => {
        const options = { maxFrameSize, expectProtocolHeader: header };
        const whole = outcome<Frame>(new FrameDecoder(options), [bytes]);
        const split = outcome<Frame>(new FrameDecoder(options), randomChunks(bytes, cuts));
        expect(split.items).toEqual(whole.items);
        expect(split.code).toBe(whole.code);
        expect(Math.max(split.maxBuffered, whole.maxBuffered)).toBeLessThanOrEqual(maxFrameSize);
      }),
      { numRuns: 2000 },
    );
  });

  it('holds the fuzz target’s properties on fast-check inputs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 2, maxLength: 300 }), (a) =>
        nativeFuzzTarget.run(Buffer.from(a)),
      ),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(nativeStream, fc.nat(255), fc.nat(255), ({ bytes }, flags, seed) =>
        nativeFuzzTarget.run(Buffer.concat([Buffer.from([flags, seed]), bytes])),
      ),
      { numRuns: 300 },
    );
  });

  it('decodes in linear time: a 1 MiB frame fed one byte at a time', () => {
    const send = SAMPLE_FRAMES.find((f): f is SendFrame => f.type === FrameType.Send)!;
    const big = encodeFrame({ ...send, message: { ...send.message, body: Buffer.alloc(1 << 20, 0x61) } });
    const d = new FrameDecoder();
    let frames = 0;
    for (let i = 0; i < big.length; i++) frames += d.push(big.subarray(i, i + 1)).length;
    expect(frames).toBe(1);
  });
});
