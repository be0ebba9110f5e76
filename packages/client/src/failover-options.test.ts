import { InvalidArgumentError } from '@keel/protocol';
import { DEFAULT_FAILOVER_OPTIONS, endpointFromAnnounced, parseConnectUrl } from './failover-options';

describe('parseConnectUrl', () => {
  it('reads a plain tcp:// URL as a single server without failover', () => {
    const t = parseConnectUrl('tcp://127.0.0.1:61616');
    expect(t.failover).toBe(false);
    expect(t.servers).toEqual([
      { url: 'tcp://127.0.0.1:61616', host: '127.0.0.1', port: 61616, tls: false, options: {} },
    ]);
    expect(t.options).toEqual(DEFAULT_FAILOVER_OPTIONS);
  });

  it('uses the default port and per-URI endpoint options', () => {
    const t = parseConnectUrl('tcp://broker?heartbeatMs=2000&maxFrameSize=65536&connectTimeoutMs=500');
    expect(t.servers[0]).toEqual({
      url: 'tcp://broker:61616',
      host: 'broker',
      port: 61616,
      tls: false,
      options: { heartbeatMs: 2000, maxFrameSize: 65536, connectTimeoutMs: 500 },
    });
  });

  it('has ActiveMQ defaults except timeout', () => {
    expect(DEFAULT_FAILOVER_OPTIONS).toMatchObject({
      initialReconnectDelay: 10,
      maxReconnectDelay: 30000,
      useExponentialBackOff: true,
      backOffMultiplier: 2,
      maxReconnectAttempts: -1,
      startupMaxReconnectAttempts: -1,
      randomize: true,
      priorityBackup: false,
      backup: false,
      updateURIsSupported: true,
      timeout: 30000,
    });
  });

  const table: [string, Partial<typeof DEFAULT_FAILOVER_OPTIONS>, string[]][] = [
    ['failover:(tcp://a:61616,tcp://b:61617)', {}, ['tcp://a:61616', 'tcp://b:61617']],
    [
      'failover:(tcp://a:61616,tcp://b:61617)?randomize=false&timeout=5000',
      { randomize: false, timeout: 5000 },
      ['tcp://a:61616', 'tcp://b:61617'],
    ],
    ['failover:tcp://a,tcp://b', {}, ['tcp://a:61616', 'tcp://b:61616']],
    ['failover://(tcp://a:1)?maxReconnectAttempts=0', { maxReconnectAttempts: 0 }, ['tcp://a:1']],
    [
      'failover:(tcp://a:1,tcp://a:1,tcp://[::1]:2)?initialReconnectDelay=100&maxReconnectDelay=2000&useExponentialBackOff=false&backOffMultiplier=1.5',
      {
        initialReconnectDelay: 100,
        maxReconnectDelay: 2000,
        useExponentialBackOff: false,
        backOffMultiplier: 1.5,
      },
      ['tcp://a:1', 'tcp://[::1]:2'],
    ],
    [
      'failover:(tcp://a:1,tcp://b:2)?priorityBackup=true&priorityURIs=tcp://a:1,tcp://b:2&backup=false&updateURIsSupported=false&reconnectDelayJitterPercent=0&startupMaxReconnectAttempts=3&timeout=-1',
      {
        priorityBackup: true,
        priorityURIs: ['tcp://a:1', 'tcp://b:2'],
        backup: false,
        updateURIsSupported: false,
        reconnectDelayJitterPercent: 0,
        startupMaxReconnectAttempts: 3,
        timeout: -1,
      },
      ['tcp://a:1', 'tcp://b:2'],
    ],
  ];

  it.each(table)('parses %s', (url, options, servers) => {
    const t = parseConnectUrl(url);
    expect(t.failover).toBe(true);
    expect(t.options).toEqual({ ...DEFAULT_FAILOVER_OPTIONS, ...options });
    expect(t.servers.map((s) => s.url)).toEqual(servers);
  });

  it('applies nested.* endpoint options to every member, a member option wins', () => {
    const t = parseConnectUrl(
      'failover:(tcp://a:1?heartbeatMs=100,tcp://b:2)?nested.heartbeatMs=900&timeout=10',
    );
    expect(t.servers.map((s) => s.options.heartbeatMs)).toEqual([100, 900]);
  });

  it('lets options given in code override the URL', () => {
    const t = parseConnectUrl('failover:(tcp://a:1)?timeout=10&randomize=true', {
      timeout: 99,
      randomize: false,
    });
    expect(t.options.timeout).toBe(99);
    expect(t.options.randomize).toBe(false);
  });

  const errors: [string, Record<string, unknown>, RegExp][] = [
    ['', {}, /empty URI/],
    ['http://a:1', {}, /unknown scheme "http"/],
    ['stomp://a:61613', {}, /unsupported scheme "stomp:\/\/"/],
    ['static:(tcp://a:1)', {}, /unsupported URL scheme "static:"/],
    ['failover:(tcp://a:1', {}, /unbalanced parentheses/],
    ['failover:()', {}, /empty list/],
    ['failover:(tcp://a:1)?randomize=yes', {}, /option "randomize": expected true or false/],
    ['failover:(tcp://a:1)?timeout=-2', {}, /option "timeout": must be >= -1/],
    [
      'failover:(tcp://a:1)?initialReconnectDelay=1.5',
      {},
      /option "initialReconnectDelay": expected an integer/,
    ],
    ['failover:(tcp://a:1)?maxReconnectDelay=abc', {}, /option "maxReconnectDelay"/],
    ['failover:(tcp://a:1)?backOffMultiplier=0.5', {}, /option "backOffMultiplier": must be >= 1/],
    [
      'failover:(tcp://a:1)?reconnectDelayJitterPercent=101',
      {},
      /"reconnectDelayJitterPercent": must be <= 100/,
    ],
    ['failover:(tcp://a:1)?priorityURIs=stomp://x:1', {}, /option "priorityURIs"/],
    ['failover:(tcp://a:1)?bogus=1', {}, /unknown failover option "bogus"/],
    ['failover:(tcp://a:1?bogus=1)', {}, /unknown option "bogus" on tcp:\/\/a:1/],
    ['failover:(tcp://a:1)?nested.heartbeatMs=-5', {}, /option "heartbeatMs": must be >= 0/],
    ['failover:(failover:(tcp://a:1))', {}, /nested composite/],
    ['tcp://a:99999', {}, /bad port/],
    ['tcp://a:1', { timeout: 'soon' }, /option "timeout": expected an integer/],
    ['tcp://a:1', { nonsense: 1 }, /unknown failover option "nonsense"/],
  ];

  it.each(errors)('rejects %j %j', (url, overrides, message) => {
    let caught: unknown;
    try {
      parseConnectUrl(url, overrides as never);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as Error).message).toMatch(message);
    expect((caught as InvalidArgumentError).code).toBe('INVALID_ARGUMENT');
  });
});

describe('endpointFromAnnounced', () => {
  it('accepts tcp:// URLs and ignores anything else', () => {
    expect(endpointFromAnnounced('tcp://b2:61617')?.url).toBe('tcp://b2:61617');
    expect(endpointFromAnnounced('stomp://b2:61613')).toBeNull();
    expect(endpointFromAnnounced('garbage')).toBeNull();
  });

  it('reads ssl:// (default port 61617) with verifyHostName, also as socket.verifyHostName', () => {
    expect(parseConnectUrl('ssl://broker').servers[0]).toEqual({
      url: 'ssl://broker:61617',
      host: 'broker',
      port: 61617,
      tls: true,
      options: {},
    });
    const t = parseConnectUrl('failover:(ssl://a:1?socket.verifyHostName=false,ssl://b:2)');
    expect(t.servers.map((s) => [s.url, s.tls, s.options.verifyHostName])).toEqual([
      ['ssl://a:1', true, false],
      ['ssl://b:2', true, undefined],
    ]);
    expect(() => parseConnectUrl('tcp://a:1?verifyHostName=false')).toThrow(/for ssl:\/\/ URIs only/);
    expect(() => parseConnectUrl('stomp+ssl://a:1')).toThrow(
      /expected tcp:\/\/HOST:PORT or ssl:\/\/HOST:PORT/,
    );
  });
});
