import { InvalidArgumentError } from '@keel/protocol';
import { DEFAULT_PREFETCH, parseBenchArgs, SCENARIO_DEFAULTS } from './bench-options';

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

  it('requires a known scenario, and offers no unbuilt one', () => {
    expect(errorOf([]).message).toMatch(/missing scenario/);
    expect(errorOf(['failover']).message).toMatch(/unknown scenario "failover"/);
    expect(errorOf(['throughput', 'fanout']).message).toMatch(/one scenario/);
    expect(parseBenchArgs(['--help']).help).toBe(true);
  });
});
