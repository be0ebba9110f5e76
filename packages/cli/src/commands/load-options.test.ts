import { InvalidArgumentError } from '@keel/protocol';
import { consumeSettings, printableBody } from './consume';
import { integerOption, ProgressLine, rateOption, targetOptions } from './load-options';
import { DEFAULT_PRODUCE_SIZE_BYTES, PRODUCE_WINDOW, produceSettings } from './produce';

function errorOf(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw err;
  }
  throw new Error('expected an InvalidArgumentError');
}

const url = 'tcp://127.0.0.1:61616';

describe('load command options', () => {
  it('parses integers and rates, naming the option when they are wrong', () => {
    expect(integerOption('10', '--count', 1)).toBe(10);
    expect(integerOption('10_000', '--count', 1)).toBe(10_000);
    expect(integerOption(undefined, '--count', 1)).toBeUndefined();
    expect(errorOf(() => integerOption('0', '--count', 1)).message).toBe(
      '--count must be an integer >= 1 (got "0")',
    );
    expect(errorOf(() => integerOption('1.5', '--count', 1)).message).toContain('--count');
    expect(errorOf(() => integerOption('12', '--nodes', 2, 9)).message).toBe(
      '--nodes must be an integer 2..9 (got "12")',
    );
    expect(rateOption('2.5', '--rate')).toBe(2.5);
    expect(errorOf(() => rateOption('fast', '--rate')).message).toBe(
      '--rate must be a positive number of messages per second (got "fast")',
    );
    expect(errorOf(() => rateOption('0', '--rate')).code).toBe('INVALID_ARGUMENT');
  });

  it('needs a tcp:// or failover: --url, exactly one of --queue and --topic, and --user with --password', () => {
    expect(targetOptions({ url, queue: 'orders' })).toEqual({ url, destination: 'queue://orders' });
    expect(
      targetOptions({
        url: 'failover:(tcp://a:1,tcp://b:2)?randomize=false',
        topic: 'news',
        user: 'u',
        password: 'p',
      }),
    ).toEqual({
      url: 'failover:(tcp://a:1,tcp://b:2)?randomize=false',
      destination: 'topic://news',
      username: 'u',
      password: 'p',
    });
    expect(errorOf(() => targetOptions({ queue: 'q' })).message).toMatch(/^--url is required/);
    expect(errorOf(() => targetOptions({ url: 'http://x', queue: 'q' })).message).toMatch(
      /^--url must be a tcp:\/\/, ssl:\/\/ or failover: URL/,
    );
    // ssl:// (issue #23.1): the client verifies the broker; NODE_EXTRA_CA_CERTS adds a private CA.
    expect(targetOptions({ url: 'failover:(ssl://a:1,ssl://b:2)', queue: 'q' }).url).toBe(
      'failover:(ssl://a:1,ssl://b:2)',
    );
    expect(targetOptions({ url: 'ssl://a:1', queue: 'q' }).url).toBe('ssl://a:1');
    expect(errorOf(() => targetOptions({ url: 'failover:(tcp://a:1', queue: 'q' })).message).toMatch(
      /^--url: /,
    );
    expect(errorOf(() => targetOptions({ url })).message).toBe('--queue or --topic is required');
    expect(errorOf(() => targetOptions({ url, queue: 'q', topic: 't' })).message).toMatch(
      /--queue and --topic/,
    );
    expect(errorOf(() => targetOptions({ url, queue: 'queue://q' })).message).toMatch(
      /^--queue takes a plain name/,
    );
    expect(errorOf(() => targetOptions({ url, queue: 'q', user: 'u' })).message).toBe(
      '--user needs --password',
    );
    expect(errorOf(() => targetOptions({ url, queue: 'q', password: 'p' })).message).toBe(
      '--password needs --user',
    );
  });

  it('produce: --count is required, --size and --rate are checked, non-persistent unless --persistent', () => {
    expect(produceSettings({ url, queue: 'q', count: '5' })).toEqual({
      target: { url, destination: 'queue://q' },
      count: 5,
      sizeBytes: DEFAULT_PRODUCE_SIZE_BYTES,
      persistent: false,
      window: PRODUCE_WINDOW,
    });
    expect(
      produceSettings({ url, topic: 't', count: '5', size: '1024', rate: '10', persistent: true }),
    ).toMatchObject({
      sizeBytes: 1024,
      ratePerS: 10,
      persistent: true,
    });
    expect(errorOf(() => produceSettings({ url, queue: 'q' })).message).toBe('--count is required');
    expect(errorOf(() => produceSettings({ url, queue: 'q', count: '1', size: '0' })).message).toMatch(
      /^--size must be an integer 1\.\./,
    );
    expect(errorOf(() => produceSettings({ url, queue: 'q', count: '1', rate: '-3' })).message).toMatch(
      /^--rate /,
    );
  });

  it('consume: --durable needs --topic and --client-id; prefetch no larger than --count', () => {
    expect(consumeSettings({ url, queue: 'q', count: '10', timeout: '500' })).toEqual({
      target: { url, destination: 'queue://q' },
      count: 10,
      timeoutMs: 500,
      print: false,
      prefetch: 10,
    });
    expect(consumeSettings({ url, topic: 't', durable: 'd', clientId: 'c', print: true })).toMatchObject({
      durableName: 'd',
      clientId: 'c',
      print: true,
      prefetch: 1000,
    });
    expect(errorOf(() => consumeSettings({ url, queue: 'q', durable: 'd', clientId: 'c' })).message).toBe(
      '--durable is for topics: use it with --topic',
    );
    expect(errorOf(() => consumeSettings({ url, topic: 't', durable: 'd' })).message).toMatch(
      /^--durable needs --client-id/,
    );
    expect(errorOf(() => consumeSettings({ url, queue: 'q', timeout: 'soon' })).message).toMatch(
      /^--timeout must be/,
    );
  });

  it('--print: one line per body, control characters replaced, cut to 80 characters', () => {
    expect(printableBody({ body: Buffer.from('000001 a\nb\r\nc') })).toBe('000001 a b c');
    expect(printableBody({ body: Buffer.from('y'.repeat(200)) })).toBe('y'.repeat(80));
    expect(printableBody({ body: Buffer.from('é'.repeat(100)) })).toHaveLength(80);
  });

  it('progress: one line per interval off a terminal, rewritten in place on one', () => {
    let text = '';
    const plain = new ProgressLine((t) => (text += t), false, 60_000);
    plain.update('a');
    plain.update('b'); // within the interval: skipped
    plain.update('c', true);
    plain.done();
    expect(text).toBe('a\nc\n');
    text = '';
    const tty = new ProgressLine((t) => (text += t), true, 0);
    tty.update('a');
    tty.update('b');
    tty.done();
    expect(text).toBe('\r\x1b[Ka\r\x1b[Kb\n');
  });
});
