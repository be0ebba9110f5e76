import { keelToStompDestination, stompToKeelDestination } from './stomp-destinations';
import { negotiateHeartbeat, negotiateStompVersion, parseHeartbeatHeader } from './stomp-negotiate';

describe('ActiveMQ STOMP destination names', () => {
  it.each([
    ['/queue/orders', 'queue://orders'],
    ['/topic/prices.eu', 'topic://prices.eu'],
    ['/temp-queue/r', 'temp-queue://c1.r'],
    ['/temp-topic/t', 'temp-topic://c1.t'],
    ['/remote-temp-queue/c2.r', 'temp-queue://c2.r'],
    ['/remote-temp-topic/c2.t', 'temp-topic://c2.t'],
    ['orders', 'queue://orders'],
    ['/weird/name', 'queue:///weird/name'],
  ])('%s -> %s', (stomp, keel) => {
    expect(stompToKeelDestination(stomp, 'c1')).toBe(keel);
  });

  it('maps back, showing other connections temporary destinations as remote', () => {
    expect(keelToStompDestination('queue://orders', 'c1')).toBe('/queue/orders');
    expect(keelToStompDestination('topic://a.b', 'c1')).toBe('/topic/a.b');
    expect(keelToStompDestination('temp-queue://c1.r', 'c1')).toBe('/temp-queue/r');
    expect(keelToStompDestination('temp-queue://c1.r', 'c2')).toBe('/remote-temp-queue/c1.r');
    expect(keelToStompDestination('temp-topic://c1.t', 'c1')).toBe('/temp-topic/t');
    // A reply-to rewritten for the responder leads back to the requester's queue.
    const seen = keelToStompDestination(stompToKeelDestination('/temp-queue/r', 'c1'), 'c2');
    expect(stompToKeelDestination(seen, 'c2')).toBe('temp-queue://c1.r');
  });

  it('rejects empty names and control characters', () => {
    expect(() => stompToKeelDestination('', 'c1')).toThrow(/empty/);
    expect(() => stompToKeelDestination('/queue/', 'c1')).toThrow(/non-empty/);
    expect(() => stompToKeelDestination('/queue/a\u0001', 'c1')).toThrow(/control/);
  });
});

describe('STOMP negotiation', () => {
  it('picks the highest common version; none offered means 1.0', () => {
    expect(negotiateStompVersion(undefined)).toBe('1.0');
    expect(negotiateStompVersion('1.0,1.1,1.2')).toBe('1.2');
    expect(negotiateStompVersion('1.1, 1.0')).toBe('1.1');
    expect(negotiateStompVersion('1.0')).toBe('1.0');
    expect(negotiateStompVersion('2.0,3.1')).toBeNull();
  });

  it('negotiates heart-beats as STOMP 1.2 "Heart-beating" says', () => {
    expect(parseHeartbeatHeader(undefined)).toEqual([0, 0]);
    expect(parseHeartbeatHeader('100, 200')).toEqual([100, 200]);
    expect(() => parseHeartbeatHeader('x,1')).toThrow(/heart-beat/);
    expect(negotiateHeartbeat([0, 0], [1000, 1000])).toEqual({ sendIntervalMs: 0, receiveIntervalMs: 0 });
    expect(negotiateHeartbeat([500, 2000], [1000, 1000])).toEqual({
      sendIntervalMs: 2000,
      receiveIntervalMs: 1000,
    });
    expect(negotiateHeartbeat([5000, 100], [1000, 0])).toEqual({
      sendIntervalMs: 1000,
      receiveIntervalMs: 0,
    });
  });
});
