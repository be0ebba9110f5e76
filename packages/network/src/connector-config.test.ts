import { InvalidArgumentError } from '@keel/protocol';
import { isForwardable, parseNetworkConnector, reconnectDelay } from './connector-config';

describe('parseNetworkConnector', () => {
  it('gives ActiveMQ defaults (Keel reconnect and replay defaults) for a static list, one peer per member', () => {
    const c = parseNetworkConnector('static:(tcp://h1:61616,tcp://h2:61617)');
    expect(c.discovery).toEqual({ kind: 'static', peers: ['tcp://h1:61616', 'tcp://h2:61617'] });
    expect(c.options).toEqual({
      name: 'bridge',
      duplex: false,
      networkTTL: 1,
      messageTTL: 1,
      consumerTTL: 1,
      dynamicOnly: false,
      conduitSubscriptions: true,
      decreaseNetworkConsumerPriority: false,
      suppressDuplicateQueueSubscriptions: false,
      excludedDestinations: [],
      dynamicallyIncludedDestinations: [],
      staticallyIncludedDestinations: [],
      prefetchSize: 1000,
      initialReconnectDelay: 100,
      maxReconnectDelay: 500,
      useExponentialBackOff: true,
      backOffMultiplier: 2,
      replayWhenNoConsumers: true,
      maxReplays: 16,
      userName: null,
      password: null,
    });
  });

  it('reads options after the parentheses; message/consumer TTL follow networkTTL unless given', () => {
    const c = parseNetworkConnector(
      'static:(tcp://h1)?maxReconnectDelay=5000&useExponentialBackOff=false&networkTTL=3&consumerTTL=2&name=east&decreaseNetworkConsumerPriority=true&prefetchSize=50',
    );
    expect(c.discovery).toEqual({ kind: 'static', peers: ['tcp://h1:61616'] });
    expect(c.options).toMatchObject({
      maxReconnectDelay: 5000,
      useExponentialBackOff: false,
      networkTTL: 3,
      messageTTL: 3,
      consumerTTL: 2,
      name: 'east',
      decreaseNetworkConsumerPriority: true,
      prefetchSize: 50,
    });
  });

  it('makes masterslave:(…) and static:(failover:(…)) one peer reached by failover', () => {
    expect(parseNetworkConnector('masterslave:(tcp://a1:1,tcp://a2:2)').discovery).toEqual({
      kind: 'static',
      peers: ['failover:(tcp://a1:1,tcp://a2:2)?randomize=false'],
    });
    expect(
      parseNetworkConnector('static:(failover:(tcp://a1:1,tcp://a2:2)?randomize=false,tcp://b:3)').discovery,
    ).toEqual({
      kind: 'static',
      peers: ['failover:(tcp://a1:1,tcp://a2:2)?randomize=false', 'tcp://b:3'],
    });
    expect(parseNetworkConnector('static:(masterslave:(tcp://a1:1,tcp://a2:2))').discovery).toEqual({
      kind: 'static',
      peers: ['failover:(tcp://a1:1,tcp://a2:2)?randomize=false'],
    });
  });

  it('parses multicast discovery with ActiveMQ default group and overrides', () => {
    expect(parseNetworkConnector('multicast://default').discovery).toEqual({
      kind: 'multicast',
      group: '239.255.2.3',
      port: 6155,
      groupName: 'default',
      interface: null,
      timeToLive: 1,
      keepAliveInterval: 500,
    });
    // multicast://GROUP:PORT, ActiveMQ's logical ?group=NAME, interface/timeToLive/keepAliveInterval.
    expect(
      parseNetworkConnector(
        'multicast://239.9.9.9:7001?group=east&interface=127.0.0.1&timeToLive=0&keepAliveInterval=100&replayWhenNoConsumers=false&maxReplays=3',
      ),
    ).toMatchObject({
      discovery: {
        kind: 'multicast',
        group: '239.9.9.9',
        port: 7001,
        groupName: 'east',
        interface: '127.0.0.1',
        timeToLive: 0,
        keepAliveInterval: 100,
      },
      options: { replayWhenNoConsumers: false, maxReplays: 3 },
    });
    expect(parseNetworkConnector('multicast://default?group=239.1.2.3&port=7000&networkTTL=2')).toMatchObject(
      {
        discovery: { kind: 'multicast', group: '239.1.2.3', port: 7000 },
        options: { networkTTL: 2 },
      },
    );
  });

  it('takes the credentials the bridge presents to its peer (ActiveMQ userName / password)', () => {
    const c = parseNetworkConnector('static:(tcp://h)?userName=bridge&password=s3cret');
    expect(c.options).toMatchObject({ userName: 'bridge', password: 's3cret' });
    expect(parseNetworkConnector('static:(tcp://h)').options).toMatchObject({
      userName: null,
      password: null,
    });
    expect(() => parseNetworkConnector('static:(tcp://h)?userName=bridge')).toThrow(/go together/);
  });

  it('parses destination lists, plain names as queues', () => {
    const c = parseNetworkConnector(
      'static:(tcp://h)?excludedDestinations=queue://secret.>,topic://t&dynamicallyIncludedDestinations=orders.*',
    );
    expect(c.options.excludedDestinations).toEqual(['queue://secret.>', 'topic://t']);
    expect(c.options.dynamicallyIncludedDestinations).toEqual(['queue://orders.*']);
    expect(isForwardable(c.options, 'queue://orders.eu')).toBe(true);
    expect(isForwardable(c.options, 'queue://billing')).toBe(false);
    expect(isForwardable(c.options, 'queue://secret.x')).toBe(false);
  });

  it.each([
    ['static:(tcp://h)?bogus=1', 'unknown option "bogus"'],
    ['static:(tcp://h)?networkTTL=0', 'networkTTL'],
    ['static:(tcp://h)?duplex=yes', 'duplex'],
    ['static:(tcp://h)?prefetchSize=0', 'prefetchSize'],
    ['static:(tcp://h)?backOffMultiplier=0.5', 'backOffMultiplier'],
    ['static:(tcp://h)?initialReconnectDelay=5000&maxReconnectDelay=10', 'maxReconnectDelay'],
    ['static:(stomp://h)', 'only tcp://'],
    ['failover:(tcp://h)', 'expected static'],
    ['tcp://h', 'expected static'],
    ['multicast://10.0.0.1', 'not in 224.0.0.0/4'],
    ['multicast://default?group=10.1.2.3', 'not in 224.0.0.0/4'],
    ['multicast://default?interface=lo', 'interface'],
    ['multicast://default?keepAliveInterval=1', 'keepAliveInterval'],
    ['static:(tcp://h)?replayWhenNoConsumers=maybe', 'replayWhenNoConsumers'],
  ])('rejects %s', (uri, why) => {
    expect(() => parseNetworkConnector(uri)).toThrow(InvalidArgumentError);
    expect(() => parseNetworkConnector(uri)).toThrow(why);
  });
});

describe('reconnectDelay', () => {
  it('follows initial × multiplier^attempt capped by maxReconnectDelay', () => {
    const { options } = parseNetworkConnector('static:(tcp://h)?maxReconnectDelay=5000');
    expect([0, 1, 2, 3, 4, 10].map((a) => reconnectDelay(options, a))).toEqual([
      100, 200, 400, 800, 1600, 5000,
    ]);
    const flat = parseNetworkConnector('static:(tcp://h)?useExponentialBackOff=false').options;
    expect([0, 5].map((a) => reconnectDelay(flat, a))).toEqual([100, 100]);
  });

  it('with the defaults never waits more than 500 ms, so a restarted peer is relinked within ~0.5 s', () => {
    const { options } = parseNetworkConnector('static:(tcp://h)');
    const schedule = [0, 1, 2, 3, 4, 5, 50].map((a) => reconnectDelay(options, a));
    expect(schedule).toEqual([100, 200, 400, 500, 500, 500, 500]);
  });
});

describe('isForwardable', () => {
  const { options } = parseNetworkConnector(
    'static:(tcp://h)?staticallyIncludedDestinations=queue://s&dynamicallyIncludedDestinations=queue://d',
  );
  it('never forwards advisory or temporary destinations', () => {
    expect(isForwardable(options, 'topic://ActiveMQ.Advisory.Consumer.Queue.d')).toBe(false);
    expect(isForwardable(options, 'temp-queue://x')).toBe(false);
  });
  it('honours static and dynamic includes', () => {
    expect(isForwardable(options, 'queue://s')).toBe(true);
    expect(isForwardable(options, 'queue://d')).toBe(true);
    expect(isForwardable(options, 'queue://other')).toBe(false);
  });
});
