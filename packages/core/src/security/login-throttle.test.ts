import { LoginThrottle } from './login-throttle';

describe('LoginThrottle', () => {
  let now = 1_000_000;
  const clock = () => now;

  test('free failures, then an exponentially growing, capped block per address', () => {
    const t = new LoginThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 1000, now: clock });
    t.failed('a');
    t.failed('a');
    expect(t.retryAfterMs('a')).toBe(0);
    t.failed('a');
    expect(t.retryAfterMs('a')).toBe(100);
    t.failed('a');
    expect(t.retryAfterMs('a')).toBe(200);
    t.failed('a');
    t.failed('a');
    t.failed('a');
    expect(t.retryAfterMs('a')).toBe(1000);
    expect(t.retryAfterMs('b')).toBe(0);
    now += 400;
    expect(t.retryAfterMs('a')).toBe(600);
    now += 600;
    expect(t.retryAfterMs('a')).toBe(0);
  });

  test('a success clears the address; an address with no failure for forgetAfterMs starts afresh', () => {
    const t = new LoginThrottle({ freeFailures: 0, baseDelayMs: 10, forgetAfterMs: 5000, now: clock });
    t.failed('a');
    expect(t.retryAfterMs('a')).toBe(10);
    t.succeeded('a');
    expect(t.retryAfterMs('a')).toBe(0);
    t.failed('a');
    t.failed('a');
    now += 6000;
    t.failed('a');
    expect(t.retryAfterMs('a')).toBe(10);
  });

  test('memory is bounded: the least recently failed address is forgotten first', () => {
    const t = new LoginThrottle({ freeFailures: 0, maxAddresses: 100, now: clock });
    for (let i = 0; i < 1000; i++) t.failed(`10.0.${i >> 8}.${i & 255}`);
    expect(t.size).toBe(100);
    expect(t.retryAfterMs('10.0.0.0')).toBe(0);
    expect(t.retryAfterMs('10.0.3.231')).toBeGreaterThan(0);
  });

  test('options are validated', () => {
    expect(() => new LoginThrottle({ maxAddresses: 0 })).toThrow(/maxAddresses/);
    expect(() => new LoginThrottle({ baseDelayMs: -1 })).toThrow(/baseDelayMs/);
  });
});
