import fc from 'fast-check';
import { InvalidArgumentError } from './errors';
import {
  type BrokerUri,
  formatUri,
  type ParsedUri,
  parseBrokerUri,
  parseCompositeUri,
  parseUri,
  parseUriOptions,
} from './uri';

const tcp = (host: string, port = 61616, options: Record<string, string> = {}): BrokerUri => ({
  kind: 'broker',
  scheme: 'tcp',
  host,
  port,
  options,
});

describe('parseBrokerUri', () => {
  it.each<[string, BrokerUri]>([
    ['tcp://host:61616', tcp('host')],
    ['tcp://host', tcp('host')],
    [
      'tcp://host:1?wireFormat.maxFrameSize=1&x=y',
      tcp('host', 1, { 'wireFormat.maxFrameSize': '1', x: 'y' }),
    ],
    ['tcp://host:2/', tcp('host', 2)],
    ['tcp://host:2/?a=b', tcp('host', 2, { a: 'b' })],
    ['tcp://host:3?', tcp('host', 3)],
    ['tcp://host:3?a=1&&b=&', tcp('host', 3, { a: '1', b: '' })],
    ['tcp://h?a=x%20y%26z&k%2E=%3D', tcp('h', 61616, { a: 'x y&z', 'k.': '=' })],
    ['tcp://0.0.0.0:65535', tcp('0.0.0.0', 65535)],
    ['tcp://[::1]:61617', tcp('::1', 61617)],
    ['tcp://[fe80::1%25eth0]', tcp('fe80::1%25eth0')],
    ['TCP://Host_1.example-2.com:5', tcp('Host_1.example-2.com', 5)],
    ['  tcp://host:4  ', tcp('host', 4)],
    ['stomp://host:61613', { kind: 'broker', scheme: 'stomp', host: 'host', port: 61613, options: {} }],
    ['stomp://host', { kind: 'broker', scheme: 'stomp', host: 'host', port: 61613, options: {} }],
    [
      'multicast://default?group=x',
      { kind: 'broker', scheme: 'multicast', host: 'default', port: 6155, options: { group: 'x' } },
    ],
  ])('parses %s', (text, expected) => {
    expect(parseBrokerUri(text)).toEqual(expected);
  });

  it.each<[string, RegExp]>([
    ['', /empty URI/],
    ['host:61616', /unknown scheme "host"/],
    ['//host:1', /missing scheme/],
    ['localhost', /missing scheme/],
    [
      'http://host:80',
      /unknown scheme "http" \(expected one of tcp, stomp, ssl, stomp\+ssl, multicast, failover, static, masterslave\)/,
    ],
    ['tcp:host:1', /expected "tcp:\/\/HOST:PORT"/],
    ['tcp://', /missing host/],
    ['tcp://:61616', /missing host/],
    ['tcp://host:', /bad port ""/],
    ['tcp://host:0', /bad port "0"/],
    ['tcp://host:65536', /bad port "65536"/],
    ['tcp://host:12ab', /bad port "12ab"/],
    ['tcp://host:-1', /bad port "-1"/],
    ['tcp://host:1:2', /bad port|invalid host/],
    ['tcp://ho st:1', /invalid host "ho st"/],
    ['tcp://user:pw@host:1', /user information/],
    ['tcp://host:1/path', /unexpected path "\/path"/],
    ['tcp://[::1:1', /missing "]"/],
    ['tcp://[::1]x', /unexpected "x" after the IPv6 address/],
    ['tcp://[zz]:1', /invalid IPv6 address "zz"/],
    ['tcp://host:1?a=1&a=2', /duplicate option "a"/],
    ['tcp://host:1?a', /option "a" has no value/],
    ['tcp://host:1?=1', /empty name/],
    ['tcp://host:1?a=%zz', /bad percent-encoding/],
    ['tcp://host:1?__proto__=1', /not a valid option name/],
    ['tcp://a:1,tcp://b:2', /unexpected ","/],
    ['failover:(tcp://a:1)', /expected a single broker URI, not a failover: composite/],
  ])('rejects %j', (text, message) => {
    expect(() => parseBrokerUri(text)).toThrow(InvalidArgumentError);
    expect(() => parseBrokerUri(text)).toThrow(message);
  });

  it('names the URI in the error but hides secrets', () => {
    expect(() => parseBrokerUri('tcp://h:1?password=hunter2&password=x')).toThrow(
      'invalid broker URI "tcp://h:1?password=***&password=***": duplicate option "password"',
    );
  });

  it('accepts extra schemes through defaultPorts', () => {
    expect(parseBrokerUri('ssl://h', { defaultPorts: { ssl: 61617 } })).toEqual({
      kind: 'broker',
      scheme: 'ssl',
      host: 'h',
      port: 61617,
      options: {},
    });
    expect(() => parseBrokerUri('tcp://h', { defaultPorts: { ssl: 61617 } })).toThrow(/unknown scheme "tcp"/);
  });

  it('rejects non-strings', () => {
    expect(() => parseBrokerUri(42 as unknown as string)).toThrow(/must be a string, got number/);
  });
});

describe('parseCompositeUri', () => {
  it.each<[string, ParsedUri]>([
    [
      'failover:(tcp://a:1,tcp://b:2)?randomize=false&timeout=3000',
      {
        kind: 'composite',
        scheme: 'failover',
        uris: [tcp('a', 1), tcp('b', 2)],
        options: { randomize: 'false', timeout: '3000' },
      },
    ],
    [
      'failover:tcp://a:1,tcp://b:2',
      { kind: 'composite', scheme: 'failover', uris: [tcp('a', 1), tcp('b', 2)], options: {} },
    ],
    // Without parentheses a "?" belongs to the member it is in (ActiveMQ URISupport.parseComposite).
    [
      'failover:tcp://a:1?x=1,tcp://b:2?y=2',
      {
        kind: 'composite',
        scheme: 'failover',
        uris: [tcp('a', 1, { x: '1' }), tcp('b', 2, { y: '2' })],
        options: {},
      },
    ],
    ['failover:tcp://a:1', { kind: 'composite', scheme: 'failover', uris: [tcp('a', 1)], options: {} }],
    [
      'failover:(tcp://a:1?x=1,tcp://b:2)?y=2',
      {
        kind: 'composite',
        scheme: 'failover',
        uris: [tcp('a', 1, { x: '1' }), tcp('b', 2)],
        options: { y: '2' },
      },
    ],
    ['failover://(tcp://a:1)', { kind: 'composite', scheme: 'failover', uris: [tcp('a', 1)], options: {} }],
    [
      'failover:( tcp://a:1 , tcp://b:2 )',
      { kind: 'composite', scheme: 'failover', uris: [tcp('a', 1), tcp('b', 2)], options: {} },
    ],
    [
      'static:(tcp://a,tcp://b)?maxReconnectDelay=5000',
      {
        kind: 'composite',
        scheme: 'static',
        uris: [tcp('a'), tcp('b')],
        options: { maxReconnectDelay: '5000' },
      },
    ],
    [
      'masterslave:(tcp://a1,tcp://a2)',
      { kind: 'composite', scheme: 'masterslave', uris: [tcp('a1'), tcp('a2')], options: {} },
    ],
    [
      'static:(failover:(tcp://a1,tcp://a2))',
      {
        kind: 'composite',
        scheme: 'static',
        uris: [{ kind: 'composite', scheme: 'failover', uris: [tcp('a1'), tcp('a2')], options: {} }],
        options: {},
      },
    ],
    [
      'static:(failover:(tcp://a1,tcp://a2)?randomize=false,tcp://c:3?x=(1))?networkTTL=2',
      {
        kind: 'composite',
        scheme: 'static',
        uris: [
          {
            kind: 'composite',
            scheme: 'failover',
            uris: [tcp('a1'), tcp('a2')],
            options: { randomize: 'false' },
          },
          tcp('c', 3, { x: '(1)' }),
        ],
        options: { networkTTL: '2' },
      },
    ],
    [
      'failover:(stomp://s:1,tcp://[::1]:2)',
      {
        kind: 'composite',
        scheme: 'failover',
        uris: [{ kind: 'broker', scheme: 'stomp', host: 's', port: 1, options: {} }, tcp('::1', 2)],
        options: {},
      },
    ],
  ])('parses %s', (text, expected) => {
    expect(parseCompositeUri(text)).toEqual(expected);
    expect(parseUri(text)).toEqual(expected);
  });

  it.each<[string, RegExp]>([
    ['failover:(tcp://a:1,tcp://b:2', /unbalanced parentheses \("\(" without "\)"\)/],
    ['failover:(tcp://a:1))', /unexpected "\)" after "\)"|unbalanced/],
    ['failover:tcp://a:1)', /unbalanced parentheses \("\)" without "\("\)/],
    ['failover:((tcp://a:1)', /unbalanced/],
    ['failover:()', /empty list of URIs in failover:/],
    ['failover:', /empty list of URIs in failover:/],
    ['failover:( )?x=1', /empty list/],
    ['failover:(tcp://a:1,,tcp://b:2)', /empty URI at position 2 of the failover: list/],
    ['failover:(tcp://a:1,)', /empty URI at position 2/],
    ['failover:(tcp://a:1)x=1', /unexpected "x=1" after "\)"/],
    ['failover:(tcp://a:1)?x=1&x=2', /duplicate option "x"/],
    ['failover:(tcp://a:1?x=1&x=2)', /duplicate option "x"/],
    ['failover:(tcp://a:99999)', /bad port "99999"/],
    ['failover:(http://a:1)', /unknown scheme "http"/],
    ['fallover:(tcp://a:1)', /unknown scheme "fallover"/],
    ['failover:(a:1)', /unknown scheme "a"/],
    ['tcp://a:1', /expected a composite URI/],
    ['multicast://default?group=x', /use parseUri for either form/],
    [`${'static:('.repeat(10)}tcp://a${')'.repeat(10)}`, /nested more than 8 deep/],
  ])('rejects %j', (text, message) => {
    expect(() => parseCompositeUri(text)).toThrow(InvalidArgumentError);
    expect(() => parseCompositeUri(text)).toThrow(message);
  });
});

describe('parseUri and formatUri', () => {
  it('parses either form', () => {
    expect(parseUri('multicast://default?group=x')).toMatchObject({
      kind: 'broker',
      scheme: 'multicast',
      host: 'default',
    });
    expect(parseUri('failover:(tcp://a:1)')).toMatchObject({ kind: 'composite', scheme: 'failover' });
  });

  it('formats canonically, with explicit ports and encoded options', () => {
    expect(formatUri(parseUri('failover:tcp://a,tcp://[::1]?x=a b&y=(1)'))).toBe(
      'failover:(tcp://a:61616,tcp://[::1]:61616?x=a%20b&y=%281%29)',
    );
    expect(formatUri(parseUri('static:(failover:(tcp://a1,tcp://a2))?networkTTL=2'))).toBe(
      'static:(failover:(tcp://a1:61616,tcp://a2:61616))?networkTTL=2',
    );
  });

  it('round-trips random URIs through formatUri', () => {
    const options = fc.dictionary(
      fc
        .string({ minLength: 1, maxLength: 6 })
        .filter((k) => !['__proto__', 'constructor', 'prototype'].includes(k)),
      fc.string({ maxLength: 6 }),
      { maxKeys: 3 },
    );
    const simple: fc.Arbitrary<ParsedUri> = fc.record({
      kind: fc.constant('broker' as const),
      scheme: fc.constantFrom('tcp', 'stomp', 'multicast'),
      host: fc.oneof(fc.stringMatching(/^[a-z0-9.-]{1,10}$/), fc.constantFrom('::1', 'fe80::2')),
      port: fc.integer({ min: 1, max: 65535 }),
      options,
    });
    const { uri } = fc.letrec<{ uri: ParsedUri }>((tie) => ({
      uri: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        simple,
        fc.record({
          kind: fc.constant('composite' as const),
          scheme: fc.constantFrom('failover' as const, 'static' as const, 'masterslave' as const),
          uris: fc.array(tie('uri'), { minLength: 1, maxLength: 3 }),
          options,
        }),
      ),
    }));
    fc.assert(
      fc.property(uri, (u) => {
        expect(parseUri(formatUri(u))).toEqual(u);
      }),
      { numRuns: 500 },
    );
  });

  it('throws only InvalidArgumentError on garbage', () => {
    const token = fc.constantFrom(
      'failover:',
      'static:',
      'tcp://',
      '(',
      ')',
      ',',
      '?',
      '&',
      '=',
      'a',
      ':1',
      '[',
      ']',
      '%',
      '/',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.array(token, { maxLength: 16 }).map((t) => t.join('')),
        ),
        (text) => {
          try {
            parseUri(text);
          } catch (err) {
            if (!(err instanceof InvalidArgumentError)) throw err;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('parseUriOptions', () => {
  it('parses a query on its own', () => {
    expect(parseUriOptions('a=1&b=x%2Cy')).toEqual({ a: '1', b: 'x,y' });
    expect(() => parseUriOptions('a=1&a=1')).toThrow(/duplicate option "a"/);
  });
});
