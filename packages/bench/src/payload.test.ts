import { readFileSync } from 'node:fs';
import { decodePayload, encodePayload } from './payload';
import { parseVmRssKiB } from './rss-sampler';

describe('payload', () => {
  it('round-trips run, seq and timestamp at the requested size', () => {
    const body = encodePayload({ runId: 'abc.1', seq: 41, sentAtMs: 1234.5678 }, 1024);
    expect(body.length).toBe(1024);
    expect(decodePayload(body)).toEqual({ runId: 'abc.1', seq: 41, sentAtMs: 1234.568 });
  });

  it('ignores bodies that are not the bench format', () => {
    expect(decodePayload(Buffer.from('hello\n'))).toBeNull();
    expect(decodePayload(Buffer.from('KB1 a b\n'))).toBeNull();
    expect(decodePayload(Buffer.alloc(300, 0x2e))).toBeNull();
  });
});

describe('parseVmRssKiB', () => {
  it('reads VmRSS from /proc/PID/status text', () => {
    expect(parseVmRssKiB('Name:\tjava\nVmPeak:\t 9999 kB\nVmRSS:\t  123456 kB\nThreads:\t40\n')).toBe(123456);
    expect(parseVmRssKiB('Name:\tzombie\n')).toBeNull();
  });

  it('reads this process', () => {
    expect(parseVmRssKiB(readFileSync('/proc/self/status', 'utf8'))).toBeGreaterThan(1000);
  });
});
