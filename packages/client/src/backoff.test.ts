import { type BackoffOptions, reconnectDelayMs } from './backoff';

const activemq: BackoffOptions = {
  initialReconnectDelay: 10,
  maxReconnectDelay: 30000,
  useExponentialBackOff: true,
  backOffMultiplier: 2,
  reconnectDelayJitterPercent: 0,
};

describe('reconnectDelayMs', () => {
  it('starts at once, then doubles from initialReconnectDelay up to maxReconnectDelay', () => {
    const schedule = Array.from({ length: 15 }, (_, pass) => reconnectDelayMs(pass, activemq, () => 0.5));
    expect(schedule).toEqual([
      0, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 30000, 30000,
    ]);
  });

  it('stays finite and capped for huge pass numbers', () => {
    expect(reconnectDelayMs(1_000_000, activemq, () => 0.5)).toBe(30000);
  });

  it('keeps the delay constant without exponential backoff', () => {
    const o = { ...activemq, useExponentialBackOff: false, initialReconnectDelay: 250 };
    expect([1, 2, 3, 10].map((p) => reconnectDelayMs(p, o, () => 0.5))).toEqual([250, 250, 250, 250]);
  });

  it('honours backOffMultiplier', () => {
    const o = { ...activemq, initialReconnectDelay: 100, backOffMultiplier: 3, maxReconnectDelay: 1000 };
    expect([1, 2, 3, 4].map((p) => reconnectDelayMs(p, o, () => 0.5))).toEqual([100, 300, 900, 1000]);
  });

  it('jitters by up to ± reconnectDelayJitterPercent, deterministic with an injected random source', () => {
    const o = { ...activemq, initialReconnectDelay: 1000, reconnectDelayJitterPercent: 20 };
    expect(reconnectDelayMs(1, o, () => 0)).toBe(800);
    expect(reconnectDelayMs(1, o, () => 0.5)).toBe(1000);
    expect(reconnectDelayMs(1, o, () => 0.999999)).toBe(1200);
    expect(reconnectDelayMs(2, o, () => 0.25)).toBe(1800);
  });

  it('never exceeds maxReconnectDelay even with jitter', () => {
    const o = { ...activemq, reconnectDelayJitterPercent: 50 };
    for (let pass = 1; pass < 40; pass++) {
      for (const r of [0, 0.3, 0.7, 0.99]) {
        const d = reconnectDelayMs(pass, o, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(30000);
      }
    }
  });
});
