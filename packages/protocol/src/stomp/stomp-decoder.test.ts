import fc from 'fast-check';
import { KeelError, ProtocolError } from '../errors';
import { StompDecoder, type StompDecoderOptions } from './stomp-decoder';
import { encodeStompFrame, STOMP_HEARTBEAT_BYTES } from './stomp-encoder';
import {
  getStompHeader,
  STOMP_CLIENT_COMMANDS,
  STOMP_SERVER_COMMANDS,
  type StompCommand,
  type StompEvent,
  type StompFrame,
  type StompVersion,
  stompFrame,
  stompHeaderRecord,
} from './stomp-frame';

const b = (s: string) => Buffer.from(s, 'utf8');

function decodeChunks(chunks: Buffer[], options?: StompDecoderOptions): StompEvent[] {
  const d = new StompDecoder(options);
  const out: StompEvent[] = [];
  for (const c of chunks) out.push(...d.push(c));
  expect(d.bufferedBytes).toBe(0);
  return out;
}

/** A compact text form of events, compared with toBe in the loops (jest's deep equality is slow). */
function signature(events: StompEvent[]): string {
  return events
    .map((e) =>
      e.type === 'frame'
        ? `${e.frame.command}${JSON.stringify(e.frame.headers)}${e.frame.body.toString('hex')}`
        : '♥',
    )
    .join('|');
}

function framesOf(events: StompEvent[]): StompFrame[] {
  return events.flatMap((e) => (e.type === 'frame' ? [e.frame] : []));
}

function expectStompError(fn: () => unknown, code: string, message: RegExp): void {
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

function decodeOne(text: string | Buffer, options?: StompDecoderOptions): StompFrame {
  const frames = framesOf(new StompDecoder(options).push(typeof text === 'string' ? b(text) : text));
  expect(frames).toHaveLength(1);
  return frames[0]!;
}

// Frames from the STOMP 1.2 specification's examples.
const ERROR_BODY =
  'The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\nHello queue a!\n-----\n' +
  'Did not contain a destination header, which is REQUIRED\nfor message propagation.\n';
const SPEC_EXAMPLES: Array<[string, StompFrame]> = [
  [
    'CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0',
    stompFrame('CONNECT', { 'accept-version': '1.2', host: 'stomp.github.org' }),
  ],
  ['CONNECTED\nversion:1.2\n\n\0', stompFrame('CONNECTED', { version: '1.2' })],
  [
    'SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0',
    stompFrame('SEND', { destination: '/queue/a', 'content-type': 'text/plain' }, 'hello queue a\n'),
  ],
  [
    'SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0',
    stompFrame('SUBSCRIBE', { id: 0, destination: '/queue/foo', ack: 'client' }),
  ],
  ['UNSUBSCRIBE\nid:0\n\n\0', stompFrame('UNSUBSCRIBE', { id: 0 })],
  ['ACK\nid:12345\ntransaction:tx1\n\n\0', stompFrame('ACK', { id: 12345, transaction: 'tx1' })],
  ['BEGIN\ntransaction:tx1\n\n\0', stompFrame('BEGIN', { transaction: 'tx1' })],
  ['DISCONNECT\nreceipt:77\n\n\0', stompFrame('DISCONNECT', { receipt: 77 })],
  ['RECEIPT\nreceipt-id:77\n\n\0', stompFrame('RECEIPT', { 'receipt-id': 77 })],
  [
    'MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0',
    stompFrame(
      'MESSAGE',
      { subscription: 0, 'message-id': '007', destination: '/queue/a', 'content-type': 'text/plain' },
      'hello queue a',
    ),
  ],
  [
    `ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:${Buffer.byteLength(ERROR_BODY)}\nmessage:malformed frame received\n\n${ERROR_BODY}\0`,
    stompFrame(
      'ERROR',
      {
        'receipt-id': 'message-12345',
        'content-type': 'text/plain',
        'content-length': Buffer.byteLength(ERROR_BODY),
        message: 'malformed frame received',
      },
      ERROR_BODY,
    ),
  ],
];

describe('STOMP decoder: spec examples', () => {
  it.each(SPEC_EXAMPLES)('decodes %j', (text, expected) => {
    expect(decodeOne(text)).toEqual(expected);
  });

  const all = b(SPEC_EXAMPLES.map(([t]) => t).join('\n'));
  const expectedEvents: StompEvent[] = SPEC_EXAMPLES.flatMap(([, f], i) => [
    ...(i > 0 ? [{ type: 'heartbeat' } as const] : []),
    { type: 'frame' as const, frame: f },
  ]);

  it('decodes them all from one chunk, with the EOLs between them as heart-beats', () => {
    expect(decodeChunks([all])).toEqual(expectedEvents);
  });

  it('decodes them split at every byte offset', () => {
    const expected = signature(expectedEvents);
    for (let i = 0; i <= all.length; i++) {
      expect(signature(decodeChunks([all.subarray(0, i), all.subarray(i)]))).toBe(expected);
    }
  });

  it('decodes them fed one byte at a time', () => {
    const chunks = [...all].map((x) => Buffer.from([x]));
    expect(decodeChunks(chunks)).toEqual(expectedEvents);
  });

  it('round-trips them through the encoder', () => {
    for (const [, frame] of SPEC_EXAMPLES) {
      const decoded = decodeOne(encodeStompFrame(frame));
      expect(decoded.command).toBe(frame.command);
      expect(decoded.body).toEqual(frame.body);
      expect(stompHeaderRecord(decoded)).toEqual({
        ...stompHeaderRecord(frame),
        ...(frame.body.length > 0 ? { 'content-length': String(frame.body.length) } : {}),
      });
    }
  });
});

describe('STOMP decoder: EOLs and heart-beats', () => {
  it('accepts CRLF everywhere', () => {
    const f = decodeOne('\r\nSEND\r\ndestination:/queue/a\r\nx:y\r\n\r\nbody\0\r\n');
    expect(f).toEqual(stompFrame('SEND', { destination: '/queue/a', x: 'y' }, 'body'));
  });

  it('reports each LF or CRLF between frames as a heart-beat, split at every offset', () => {
    const bytes = b('\n\r\n\nRECEIPT\nreceipt-id:1\n\n\0\r\n\n');
    for (let i = 0; i <= bytes.length; i++) {
      const events = decodeChunks([bytes.subarray(0, i), bytes.subarray(i)]);
      expect(events.map((e) => e.type)).toEqual([
        'heartbeat',
        'heartbeat',
        'heartbeat',
        'frame',
        'heartbeat',
        'heartbeat',
      ]);
    }
  });

  it('keeps a lone CR at the end of a chunk until the LF arrives', () => {
    const d = new StompDecoder();
    expect(d.push(b('\r'))).toEqual([]);
    expect(d.bufferedBytes).toBe(1);
    expect(d.push(b('\n'))).toEqual([{ type: 'heartbeat' }]);
    expect(d.bufferedBytes).toBe(0);
  });

  it('rejects a CR not followed by LF between frames', () => {
    expectStompError(() => new StompDecoder().push(b('\rX')), 'PROTOCOL_ERROR', /CR not followed by LF/);
  });

  it('encodes a heart-beat as one LF', () => {
    expect(STOMP_HEARTBEAT_BYTES).toEqual(b('\n'));
  });
});

describe('STOMP decoder: bodies', () => {
  it('honours content-length so bodies can contain NUL', () => {
    const body = Buffer.from([0, 1, 0, 0xff, 0]);
    const bytes = Buffer.concat([
      b('SEND\ndestination:/queue/a\ncontent-length:5\n\n'),
      body,
      Buffer.from([0]),
    ]);
    const f = decodeOne(bytes);
    expect(f.body).toEqual(body);
    expect(getStompHeader(f, 'content-length')).toBe('5');
    const encoded = encodeStompFrame(stompFrame('SEND', { destination: '/queue/a' }, body));
    expect(encoded).toEqual(bytes);
  });

  it('ends the body at the first NUL without content-length', () => {
    const events = new StompDecoder().push(b('SEND\ndestination:/queue/a\n\nab\0cd\0'));
    expect(framesOf(events)[0]!.body).toEqual(b('ab'));
    // "cd\0" is then read as a frame whose command is "cd": unknown.
  });

  it('accepts content-length:0 and an empty body', () => {
    expect(decodeOne('SEND\ndestination:/q\ncontent-length:0\n\n\0').body).toEqual(Buffer.alloc(0));
  });

  it('uses the first content-length when it is repeated', () => {
    expect(decodeOne('SEND\ncontent-length:2\ncontent-length:9\n\nab\0').body).toEqual(b('ab'));
  });

  it('rejects a body that does not end where content-length says', () => {
    expectStompError(
      () => new StompDecoder().push(b('SEND\ncontent-length:2\n\nabc\0')),
      'PROTOCOL_ERROR',
      /not followed by NUL after its content-length of 2/,
    );
  });

  it.each(['-1', 'abc', ' 2', '2 ', '1e3', ''])('rejects content-length %j', (cl) => {
    expectStompError(
      () => new StompDecoder().push(b(`SEND\ncontent-length:${cl}\n\n\0`)),
      'PROTOCOL_ERROR',
      /invalid content-length/,
    );
  });

  it('rejects a body on frames that must not have one', () => {
    expectStompError(
      () => new StompDecoder().push(b('SUBSCRIBE\nid:1\n\nxyz\0')),
      'PROTOCOL_ERROR',
      /SUBSCRIBE frame must not have a body/,
    );
    expectStompError(
      () => new StompDecoder().push(b('ACK\nid:1\ncontent-length:3\n\n')),
      'PROTOCOL_ERROR',
      /ACK frame must not have a body/,
    );
  });
});

describe('STOMP decoder: headers', () => {
  it('keeps repeated headers in order; the first one wins', () => {
    const f = decodeOne('MESSAGE\nfoo:World\nfoo:Hello\n\n\0');
    expect(f.headers).toEqual([
      ['foo', 'World'],
      ['foo', 'Hello'],
    ]);
    expect(getStompHeader(f, 'foo')).toBe('World');
    expect(stompHeaderRecord(f)).toEqual({ foo: 'World' });
  });

  it('does not trim names or values, and splits at the first colon', () => {
    const f = decodeOne('SEND\n a : b \nx:y:z\nempty:\n\n\0');
    expect(f.headers).toEqual([
      [' a ', ' b '],
      ['x', 'y:z'],
      ['empty', ''],
    ]);
  });

  it('unescapes \\r \\n \\c \\\\ in STOMP 1.2', () => {
    const f = decodeOne('MESSAGE\na\\cb:1\\r\\n2\\c3\\\\4\n\n\0');
    expect(f.headers).toEqual([['a:b', '1\r\n2:3\\4']]);
  });

  it.each(['\\t', '\\', 'x\\', '\\C', '\\0'])('rejects the undefined escape sequence in %j', (value) => {
    expectStompError(
      () => new StompDecoder().push(b(`MESSAGE\nh:${value}\n\n\0`)),
      'PROTOCOL_ERROR',
      /undefined escape sequence/,
    );
  });

  it('does not unescape CONNECT, STOMP or CONNECTED headers', () => {
    expect(decodeOne('CONNECT\nlogin:a\\b\npasscode:c\\cd\n\n\0').headers).toEqual([
      ['login', 'a\\b'],
      ['passcode', 'c\\cd'],
    ]);
    expect(decodeOne('STOMP\nlogin:a\\b\n\n\0').headers).toEqual([['login', 'a\\b']]);
    expect(decodeOne('CONNECTED\nserver:x\\y\n\n\0').headers).toEqual([['server', 'x\\y']]);
  });

  it('is version-aware: 1.0 does no escaping, 1.1 has no \\r', () => {
    expect(decodeOne('MESSAGE\nh:a\\nb\n\n\0', { version: '1.0' }).headers).toEqual([['h', 'a\\nb']]);
    expect(decodeOne('MESSAGE\nh:a\\nb\\c\n\n\0', { version: '1.1' }).headers).toEqual([['h', 'a\nb:']]);
    expectStompError(
      () => new StompDecoder({ version: '1.1' }).push(b('MESSAGE\nh:\\r\n\n\0')),
      'PROTOCOL_ERROR',
      /undefined escape/,
    );
  });

  it('switches version between frames', () => {
    const d = new StompDecoder({ version: '1.0' });
    const events = d.push(b('CONNECT\naccept-version:1.2\n\n\0SEND\nh:a\\'));
    expect(framesOf(events)).toHaveLength(1);
    // The SEND started before the switch, so it is still read as 1.0 ...
    d.version = '1.2';
    expect(framesOf(d.push(b('cb\n\n\0')))[0]!.headers).toEqual([['h', 'a\\cb']]);
    // ... and the next one as 1.2.
    expect(framesOf(d.push(b('SEND\nh:a\\cb\n\n\0')))[0]!.headers).toEqual([['h', 'a:b']]);
    expect(() => {
      d.version = '2.0' as StompVersion;
    }).toThrow(/unknown STOMP version/);
  });

  it('rejects header lines without a colon and empty names', () => {
    expectStompError(
      () => new StompDecoder().push(b('SEND\nnocolon\n\n\0')),
      'PROTOCOL_ERROR',
      /header line without ':' in SEND frame: "nocolon"/,
    );
    expectStompError(
      () => new StompDecoder().push(b('SEND\n:value\n\n\0')),
      'PROTOCOL_ERROR',
      /empty header name/,
    );
  });

  it('decodes UTF-8 names and values', () => {
    expect(decodeOne('SEND\nnäme:välue €\n\n\0').headers).toEqual([['näme', 'välue €']]);
  });
});

describe('STOMP decoder: commands', () => {
  it.each([...STOMP_CLIENT_COMMANDS, ...STOMP_SERVER_COMMANDS])('accepts %s', (command) => {
    expect(decodeOne(`${command}\n\n\0`).command).toBe(command);
  });

  it.each(['send', 'FOO', 'SEND ', ' SEND', 'GET / HTTP/1.1'])(
    'rejects the unknown command %j',
    (command) => {
      expectStompError(
        () => new StompDecoder().push(b(`${command}\n\n\0`)),
        'PROTOCOL_ERROR',
        /unknown command/,
      );
    },
  );

  it('truncates a long unknown command in the message', () => {
    expectStompError(() => new StompDecoder().push(b(`${'X'.repeat(500)}\n`)), 'PROTOCOL_ERROR', /"X{40}…"$/);
  });
});

describe('STOMP decoder: limits', () => {
  it('limits the header line length, even before the line ends', () => {
    const d = new StompDecoder({ maxHeaderLineLength: 20 });
    expect(framesOf(d.push(b(`SEND\n${'h'.repeat(10)}:${'v'.repeat(9)}\n\n\0`)))).toHaveLength(1);
    expectStompError(
      () => new StompDecoder({ maxHeaderLineLength: 20 }).push(b(`SEND\nh:${'v'.repeat(19)}\n`)),
      'FRAME_TOO_LARGE',
      /header line longer than 20 bytes/,
    );
    const e = new StompDecoder({ maxHeaderLineLength: 20 });
    e.push(b('SEND\nh:'));
    expectStompError(() => e.push(b('v'.repeat(100))), 'FRAME_TOO_LARGE', /header line longer than 20/);
  });

  it('limits the header count', () => {
    const headers = (n: number) => Array.from({ length: n }, (_, i) => `h${i}:v\n`).join('');
    expect(decodeOne(`SEND\n${headers(3)}\n\0`, { maxHeaders: 3 }).headers).toHaveLength(3);
    expectStompError(
      () => new StompDecoder({ maxHeaders: 3 }).push(b(`SEND\n${headers(4)}\n\0`)),
      'FRAME_TOO_LARGE',
      /more than 3 headers/,
    );
  });

  it('limits the body size, with content-length before any body byte arrives', () => {
    expectStompError(
      () => new StompDecoder({ maxBodySize: 10 }).push(b('SEND\ncontent-length:11\n\n')),
      'FRAME_TOO_LARGE',
      /body of 11 bytes or more is larger than the maximum body size of 10/,
    );
    expect(
      decodeOne(`SEND\ncontent-length:10\n\n${'x'.repeat(10)}\0`, { maxBodySize: 10 }).body,
    ).toHaveLength(10);
  });

  it('limits the body size without content-length, while it streams in', () => {
    expect(decodeOne(`SEND\n\n${'x'.repeat(10)}\0`, { maxBodySize: 10 }).body).toHaveLength(10);
    const d = new StompDecoder({ maxBodySize: 10 });
    d.push(b('SEND\n\nxxxxx'));
    expectStompError(() => d.push(b('xxxxxxxxxx')), 'FRAME_TOO_LARGE', /maximum body size of 10/);
    expectStompError(
      () => new StompDecoder({ maxBodySize: 10 }).push(b(`SEND\n\n${'x'.repeat(11)}\0`)),
      'FRAME_TOO_LARGE',
      /body/,
    );
  });

  it('limits the frame size', () => {
    const frame = b('SEND\nh:v\n\nbody\0');
    expect(decodeOne(frame, { maxFrameSize: frame.length }).body).toEqual(b('body'));
    expectStompError(
      () => new StompDecoder({ maxFrameSize: frame.length - 1 }).push(frame),
      'FRAME_TOO_LARGE',
      /SEND frame of 15 bytes is larger than the maximum frame size of 14 bytes/,
    );
    expectStompError(
      () => new StompDecoder({ maxFrameSize: 30 }).push(b('SEND\ncontent-length:20\n\n')),
      'FRAME_TOO_LARGE',
      /maximum frame size of 30/,
    );
    const d = new StompDecoder({ maxFrameSize: 30 });
    d.push(b('SEND\n'));
    expectStompError(() => d.push(b('a:b\n'.repeat(10))), 'FRAME_TOO_LARGE', /maximum frame size of 30/);
  });

  it('validates its options', () => {
    expect(() => new StompDecoder({ maxFrameSize: 0 })).toThrow(/maxFrameSize must be a positive integer/);
    expect(() => new StompDecoder({ maxHeaders: 1.5 })).toThrow(/maxHeaders/);
  });

  it('stays failed after an error, and pushEach delivers the frames before it', () => {
    const d = new StompDecoder();
    const seen: StompEvent[] = [];
    expect(() => d.pushEach(b('RECEIPT\nreceipt-id:1\n\n\0\nBOGUS\n\n\0'), (e) => seen.push(e))).toThrow(
      /unknown command "BOGUS"/,
    );
    expect(seen.map((e) => e.type)).toEqual(['frame', 'heartbeat']);
    expect(() => d.push(b('RECEIPT\n\n\0'))).toThrow(/unknown command "BOGUS"/);
  });
});

describe('STOMP encoder', () => {
  it('escapes names and values per version', () => {
    const f = stompFrame('MESSAGE', { 'a:b': '1\r\n2:3\\4' });
    expect(encodeStompFrame(f).toString()).toBe('MESSAGE\na\\cb:1\\r\\n2\\c3\\\\4\n\n\0');
    expect(encodeStompFrame(f, { version: '1.1' }).toString()).toBe('MESSAGE\na\\cb:1\r\\n2\\c3\\\\4\n\n\0');
    expect(() => encodeStompFrame(f, { version: '1.0' })).toThrow(/STOMP 1.0 frames do not escape/);
    expect(encodeStompFrame(stompFrame('MESSAGE', { a: 'b:c\\' }), { version: '1.0' }).toString()).toBe(
      'MESSAGE\na:b:c\\\n\n\0',
    );
  });

  it('does not escape CONNECT/CONNECTED and refuses what it cannot encode there', () => {
    expect(encodeStompFrame(stompFrame('CONNECT', { passcode: 'a:b\\c' })).toString()).toBe(
      'CONNECT\npasscode:a:b\\c\n\n\0',
    );
    expect(() => encodeStompFrame(stompFrame('CONNECTED', { server: 'a\nb' }))).toThrow(
      /CONNECTED frames do not escape/,
    );
  });

  it('adds content-length to bodies and checks a given one', () => {
    expect(encodeStompFrame(stompFrame('SEND', { destination: '/q' }, 'hi')).toString()).toBe(
      'SEND\ndestination:/q\ncontent-length:2\n\nhi\0',
    );
    expect(
      encodeStompFrame(stompFrame('SEND', { destination: '/q' }, 'hi'), { contentLength: false }).toString(),
    ).toBe('SEND\ndestination:/q\n\nhi\0');
    expect(() =>
      encodeStompFrame(stompFrame('SEND', {}, Buffer.from([1, 0])), { contentLength: false }),
    ).toThrow(/contains NUL/);
    expect(() => encodeStompFrame(stompFrame('SEND', { 'content-length': 3 }, 'hi'))).toThrow(
      /content-length 3 does not match the body of 2 bytes/,
    );
    expect(encodeStompFrame(stompFrame('SEND', { 'content-length': 2 }, 'hi')).toString()).toBe(
      'SEND\ncontent-length:2\n\nhi\0',
    );
  });

  it('refuses bodies on frames without one and unknown commands', () => {
    expect(() => encodeStompFrame(stompFrame('SUBSCRIBE', { id: 1 }, 'x'))).toThrow(
      /only SEND, MESSAGE and ERROR/,
    );
    expect(() => encodeStompFrame(stompFrame('HELLO' as StompCommand))).toThrow(
      /unknown STOMP command "HELLO"/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const anyText = fc.string({ unit: 'binary', maxLength: 12 });
const commandArb = fc.constantFrom<StompCommand>(
  'SEND',
  'MESSAGE',
  'ERROR',
  'SUBSCRIBE',
  'ACK',
  'RECEIPT',
  'CONNECT',
  'CONNECTED',
);

function frameArb(version: StompVersion): fc.Arbitrary<StompFrame> {
  return fc
    .record({
      command: commandArb,
      headers: fc.array(fc.tuple(anyText, anyText), { maxLength: 6 }),
      body: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    })
    .map(({ command, headers, body }) => {
      const plain = version === '1.0' || command === 'CONNECT' || command === 'CONNECTED';
      const h: Array<[string, string]> = headers
        .map(([n, v]): [string, string] => {
          // What can be encoded: a non-empty name, no content-length (the encoder adds it), and
          // for unescaped frames no CR/LF at all and no ':' in names; 1.1 cannot carry a CR.
          let name = `h${n}`.replace(/content-length/g, 'x');
          let value = v;
          if (plain) {
            name = name.replace(/[\r\n:]/g, '_');
            value = value.replace(/[\r\n]/g, '_');
          } else if (version === '1.1') {
            name = name.replace(/\r/g, '_');
            value = value.replace(/\r/g, '_');
          }
          return [name, value];
        })
        .filter(([n]) => !n.endsWith('\r'));
      const withBody = command === 'SEND' || command === 'MESSAGE' || command === 'ERROR';
      return { command, headers: h, body: withBody ? body : Buffer.alloc(0) };
    });
}

describe('STOMP codec properties', () => {
  it.each<StompVersion>(['1.2', '1.1', '1.0'])(
    'round-trips random frames split at random offsets (%s)',
    (version) => {
      fc.assert(
        fc.property(
          fc.array(frameArb(version), { minLength: 1, maxLength: 4 }),
          fc.array(fc.nat(), { maxLength: 5 }),
          fc.array(fc.constantFrom('', '\n', '\r\n'), { minLength: 4, maxLength: 4 }),
          (frames, cuts, eols) => {
            const bytes = Buffer.concat(
              frames.flatMap((f, i) => [encodeStompFrame(f, { version }), b(eols[i % 4]!)]),
            );
            const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
            const chunks: Buffer[] = [];
            let prev = 0;
            for (const p of points) {
              chunks.push(bytes.subarray(prev, p));
              prev = p;
            }
            chunks.push(bytes.subarray(prev));
            const decoded = framesOf(decodeChunks(chunks, { version }));
            expect(decoded).toEqual(
              frames.map((f) => ({
                ...f,
                headers:
                  f.body.length > 0 ? [...f.headers, ['content-length', String(f.body.length)]] : f.headers,
              })),
            );
          },
        ),
        { numRuns: 300 },
      );
    },
  );

  function onlyProtocolErrors(chunks: Buffer[], options?: StompDecoderOptions): void {
    const d = new StompDecoder(options);
    try {
      for (const c of chunks) d.push(c);
    } catch (err) {
      if (!(err instanceof ProtocolError) || !KeelError.isInstance(err)) throw err;
    }
  }

  it('never throws anything but ProtocolError on garbage', () => {
    const token = fc.constantFrom(
      'SEND',
      'MESSAGE',
      'CONNECT',
      '\n',
      '\r\n',
      '\r',
      ':',
      '\\',
      '\\c',
      '\0',
      'content-length:',
      '3',
      'a',
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a)),
            fc.array(token, { maxLength: 12 }).map((t) => b(t.join(''))),
          ),
          {
            maxLength: 8,
          },
        ),
        fc.constantFrom<StompVersion>('1.0', '1.1', '1.2'),
        (chunks, version) =>
          onlyProtocolErrors(chunks, {
            version,
            maxFrameSize: 256,
            maxHeaders: 4,
            maxHeaderLineLength: 32,
            maxBodySize: 64,
          }),
      ),
      { numRuns: 2000 },
    );
  });
});
