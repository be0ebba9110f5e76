import { InvalidArgumentError } from '@keel/protocol';
import {
  DEFAULT_AMQP_BENCH_URL,
  DEFAULT_CONSUMERS_PER_QUEUE,
  DEFAULT_COST_SETTLE_MS,
  DEFAULT_IDLE_CONNECTIONS,
  DEFAULT_IDLE_SETTLE_MS,
  DEFAULT_PREFETCH,
  DEFAULT_QUEUES,
  parseBenchArgs,
  SCENARIO_DEFAULTS,
} from './bench-options';

function errorOf(argv: string[]): InvalidArgumentError {
  try {
    parseBenchArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error(`parseBenchArgs(${JSON.stringify(argv)}) did not throw`);
}

describe('parseBenchArgs', () => {
  it('applies the scenario defaults', () => {
    const o = parseBenchArgs(['throughput']);
    expect(o).toMatchObject({
      scenario: 'throughput',
      target: 'keel',
      host: '127.0.0.1',
      port: 61613,
      producers: SCENARIO_DEFAULTS.throughput.producers,
      consumers: SCENARIO_DEFAULTS.throughput.consumers,
      inFlight: 1,
      sizeBytes: 1024,
      prefetch: DEFAULT_PREFETCH,
      runs: 1,
      quiet: false,
    });
    expect(parseBenchArgs(['fanout']).consumers).toBe(10);
    expect(parseBenchArgs(['backlog']).count).toBe(1_000_000);
  });

  it('reads every option, in both --name value and --name=value forms', () => {
    const o = parseBenchArgs([
      'throughput',
      '--target',
      'rabbitmq',
      '--url=stomp://127.0.0.1:61614',
      '--login',
      'guest',
      '--passcode=guest',
      '--producers',
      '2',
      '--consumers=3',
      '--in-flight',
      '64',
      '--size',
      '4096',
      '--count',
      '1_000',
      '--duration-ms',
      '5000',
      '--queue',
      'bench.q',
      '--runs',
      '3',
      '--out',
      '/tmp/x.json',
      '--broker-pid',
      '42',
      '--quiet',
    ]);
    expect(o).toMatchObject({
      target: 'rabbitmq',
      port: 61614,
      login: 'guest',
      passcode: 'guest',
      producers: 2,
      consumers: 3,
      inFlight: 64,
      sizeBytes: 4096,
      count: 1000,
      durationMs: 5000,
      queue: 'bench.q',
      runs: 3,
      out: '/tmp/x.json',
      brokerPid: 42,
      quiet: true,
    });
  });

  it('names the bad option in every error', () => {
    expect(errorOf(['throughput', '--producers', 'x']).message).toContain('--producers');
    expect(errorOf(['throughput', '--in-flight', '0']).message).toMatch(/--in-flight must be at least 1/);
    expect(errorOf(['throughput', '--size', '10']).message).toMatch(/--size must be at least 64/);
    expect(errorOf(['throughput', '--bogus', '1']).message).toBe('unknown option --bogus');
    expect(errorOf(['throughput', '--target', 'kafka']).message).toContain('--target');
    expect(errorOf(['throughput', '--url', 'stomp://a b']).message).toContain('--url');
    expect(errorOf(['throughput', '--count']).message).toBe('--count needs a value');
    expect(errorOf(['throughput', '--count', '--runs', '2']).message).toBe('--count needs a value');
    expect(errorOf(['throughput', '--runs', '1', '--runs', '2']).message).toBe('--runs given twice');
    expect(errorOf(['throughput', '--quiet=yes']).message).toBe('--quiet takes no value');
    expect(errorOf(['throughput', '--queue', 'a/b']).message).toContain('--queue');
  });

  it('requires a known scenario', () => {
    expect(errorOf([]).message).toMatch(/missing scenario/);
    expect(errorOf(['latency']).message).toMatch(/unknown scenario "latency"/);
    expect(errorOf(['throughput', 'fanout']).message).toMatch(/one scenario/);
    expect(parseBenchArgs(['--help']).help).toBe(true);
  });

  it('takes the native protocol for Keel only, with tcp:// or failover: URLs', () => {
    const o = parseBenchArgs(['throughput', '--protocol', 'native']);
    expect(o).toMatchObject({
      protocol: 'native',
      url: 'tcp://127.0.0.1:61616',
      host: '127.0.0.1',
      port: 61616,
    });
    const f = parseBenchArgs([
      'throughput',
      '--protocol=native',
      '--url',
      'failover:(tcp://10.0.0.1:61617,tcp://10.0.0.2:61618)?randomize=false',
    ]);
    expect(f).toMatchObject({ host: '10.0.0.1', port: 61617 });
    expect(f.urls).toEqual(['failover:(tcp://10.0.0.1:61617,tcp://10.0.0.2:61618)?randomize=false']);
    expect(errorOf(['throughput', '--protocol', 'native', '--target', 'rabbitmq']).message).toMatch(
      /--protocol native .* --target keel only/,
    );
    expect(errorOf(['throughput', '--protocol', 'amqp']).message).toContain('--protocol');
    expect(errorOf(['throughput', '--protocol', 'native', '--url', 'stomp://a:1']).message).toContain(
      '--url',
    );
    expect(errorOf(['throughput', '--url', 'tcp://a:61616']).message).toMatch(/add --protocol native/);
  });

  it('reads a STOMP URL list, for failover only', () => {
    const o = parseBenchArgs(['failover', '--url', 'stomp://a:61613,stomp://b:61614', '--master-pid', '123']);
    expect(o.urls).toEqual(['stomp://a:61613', 'stomp://b:61614']);
    expect(o).toMatchObject({ host: 'a', port: 61613, masterPid: 123 });
    expect(errorOf(['throughput', '--url', 'stomp://a,stomp://b']).message).toMatch(
      /only the failover scenario/,
    );
  });

  it('checks the failover options', () => {
    const o = parseBenchArgs([
      'failover',
      '--protocol',
      'native',
      '--url',
      'failover:(tcp://a,tcp://b)',
      '--master-pid',
      '42',
      '--admin-url',
      'http://127.0.0.1:8161/,http://127.0.0.1:8162',
    ]);
    expect(o).toMatchObject({
      producers: 4,
      consumers: 4,
      inFlight: 1,
      ratePerS: 200,
      durationMs: 30_000,
      killAfterMs: 10_000,
      masterPid: 42,
      adminUrls: ['http://127.0.0.1:8161', 'http://127.0.0.1:8162'],
    });
    expect(errorOf(['failover', '--url', 'stomp://a,stomp://b']).message).toMatch(/--master-pid/);
    expect(
      errorOf(['failover', '--protocol', 'native', '--url', 'tcp://a:61616', '--master-pid', '1']).message,
    ).toMatch(/failover:\(tcp:\/\/a,tcp:\/\/b\) --url/);
    expect(errorOf(['failover', '--url', 'stomp://a', '--master-pid', '1']).message).toMatch(
      /at least two URLs/,
    );
    expect(
      errorOf([
        'failover',
        '--url',
        's://a',
        '--master-pid',
        '1',
        '--duration-ms',
        '5000',
        '--kill-after-ms',
        '5000',
      ]).message,
    ).toContain('--url');
    expect(
      errorOf([
        'failover',
        '--url',
        'stomp://a,stomp://b',
        '--master-pid',
        '1',
        '--duration-ms',
        '5000',
        '--kill-after-ms',
        '5000',
      ]).message,
    ).toMatch(/--kill-after-ms \(5000\) must be below --duration-ms/);
    expect(
      errorOf(['failover', '--url', 'stomp://a,stomp://b', '--master-pid', '1', '--admin-url', 'ftp://x'])
        .message,
    ).toContain('--admin-url');
    expect(errorOf(['throughput', '--master-pid', '1']).message).toBe(
      '--master-pid is an option of the failover scenario, not throughput',
    );
  });

  it('checks the connections options', () => {
    const o = parseBenchArgs([
      'connections',
      '--idle-connections',
      '100',
      '--connect-batch=10',
      '--idle-subscribe',
    ]);
    expect(o).toMatchObject({
      idleConnections: 100,
      connectBatch: 10,
      idleSubscribe: true,
      ratePerS: 200,
      durationMs: 10_000,
    });
    expect(parseBenchArgs(['connections'])).toMatchObject({
      idleConnections: DEFAULT_IDLE_CONNECTIONS,
      idleSubscribe: false,
    });
    expect(errorOf(['connections', '--connect-batch', '0']).message).toMatch(
      /--connect-batch must be at least 1/,
    );
    expect(errorOf(['backlog', '--idle-subscribe']).message).toMatch(
      /--idle-subscribe is an option of the connections/,
    );
  });

  it('checks the many-queues options (issue #25.4)', () => {
    expect(
      parseBenchArgs([
        'many-queues',
        '--queues',
        '1_000',
        '--consumers-per-queue',
        '4',
        '--idle-settle-ms',
        '0',
        '--pg-url',
        'postgres://u@h/db',
      ]),
    ).toMatchObject({
      queues: 1000,
      consumersPerQueue: 4,
      idleSettleMs: 0,
      pgUrl: 'postgres://u@h/db',
      durationMs: 30_000,
    });
    expect(parseBenchArgs(['many-queues'])).toMatchObject({
      queues: DEFAULT_QUEUES,
      consumersPerQueue: DEFAULT_CONSUMERS_PER_QUEUE,
      idleSettleMs: DEFAULT_IDLE_SETTLE_MS,
      consumers: 4,
      producers: 4,
    });
    expect(errorOf(['many-queues', '--queues', '0']).message).toMatch(/--queues must be at least 1/);
    expect(errorOf(['throughput', '--queues', '10']).message).toMatch(
      /--queues is an option of the many-queues/,
    );
  });

  it('runs connections and many-queues over AMQP 0-9-1 too', () => {
    expect(parseBenchArgs(['connections', '--target', 'rabbitmq-amqp']).protocol).toBe('amqp');
    expect(parseBenchArgs(['many-queues', '--target', 'rabbitmq-amqp']).protocol).toBe('amqp');
  });

  it('paces only when asked, except failover and connections', () => {
    expect(parseBenchArgs(['throughput']).ratePerS).toBe(0);
    expect(parseBenchArgs(['throughput', '--rate', '500']).ratePerS).toBe(500);
    expect(SCENARIO_DEFAULTS.connections.ratePerS).toBe(200);
  });
});

describe('AMQP 0-9-1 targets (issue #25)', () => {
  test('rabbitmq-amqp and rabbitmq-quorum take the amqp protocol, its default URL and the cost options', () => {
    const o = parseBenchArgs(['throughput', '--target', 'rabbitmq-quorum', '--pg-url', 'postgres://u@h/db']);
    expect(o.protocol).toBe('amqp');
    expect(o.url).toBe(DEFAULT_AMQP_BENCH_URL);
    expect(o.port).toBe(5672);
    expect(o.pgUrl).toBe('postgres://u@h/db');
    expect(o.costSettleMs).toBe(DEFAULT_COST_SETTLE_MS);
    const a = parseBenchArgs([
      'throughput',
      '--target',
      'rabbitmq-amqp',
      '--url',
      'amqp://127.0.0.1:5673',
      '--cost-settle-ms',
      '0',
    ]);
    expect([a.host, a.port, a.costSettleMs]).toEqual(['127.0.0.1', 5673, 0]);
  });

  test.each([
    [['throughput', '--target', 'rabbitmq-amqp', '--protocol', 'stomp'], /--protocol amqp only/],
    [
      ['throughput', '--target', 'keel', '--protocol', 'amqp'],
      /drives --target rabbitmq-amqp or rabbitmq-quorum only/,
    ],
    [['throughput', '--target', 'rabbitmq-amqp', '--url', 'stomp://h:1'], /not an amqp:\/\/host:port URL/],
    [
      ['throughput', '--target', 'rabbitmq-amqp', '--url', 'amqp://guest:guest@h:1'],
      /--login and --passcode/,
    ],
    [['failover', '--target', 'rabbitmq-amqp', '--master-pid', '1'], /every scenario but failover/],
    [['throughput', '--pg-url', 'mysql://x'], /not a postgres:\/\/ URL/],
    [
      ['backlog', '--pg-url', 'postgres://x/y'],
      /--pg-url is an option of the throughput, fanout, many-queues scenario/,
    ],
  ])('refuses %j', (argv, message) => {
    expect(() => parseBenchArgs(argv)).toThrow(message);
  });
});
