/**
 * Unique client ids on STOMP CONNECT (issue #21.5; ActiveMQ's InvalidClientIDException and its
 * transport connector option allowLinkStealing), over real sockets.
 */
import { headersOf, RawStomp, type StompFixture, startStomp } from './__tests__/stomp-test-kit';

describe('STOMP client-id uniqueness', () => {
  let fx: StompFixture;
  const raws: RawStomp[] = [];
  afterEach(async () => {
    for (const r of raws.splice(0)) r.destroy();
    await fx?.close();
  });

  async function connect(clientId: string, heartBeat = '0,0'): Promise<RawStomp> {
    const r = await RawStomp.connect(fx.port, {
      'accept-version': '1.2',
      host: 'keel',
      'client-id': clientId,
      'heart-beat': heartBeat,
    });
    raws.push(r);
    return r;
  }

  /** CONNECT with `clientId`: the CONNECTED or ERROR frame's command and headers. */
  async function attempt(clientId: string): Promise<{ command: string; headers: Record<string, string> }> {
    const r = await RawStomp.open(fx.port, '1.2');
    raws.push(r);
    r.send('CONNECT', { 'accept-version': '1.2', host: 'keel', 'client-id': clientId, 'heart-beat': '0,0' });
    const f = await r.frame();
    return { command: f.command, headers: headersOf(f) };
  }

  it('refuses a CONNECT whose client-id a live connection holds, with an ERROR INVALID_CLIENT_ID', async () => {
    fx = await startStomp();
    const first = await connect('app');
    const second = await attempt('app');
    expect(second.command).toBe('ERROR');
    expect(second.headers.code).toBe('INVALID_CLIENT_ID');
    expect(second.headers.message).toMatch(/^Broker: node-1 - Client: app already connected from /);
    // The first is untouched and still serves.
    first.send('SEND', { destination: '/queue/q', receipt: 'r1' }, 'x');
    expect(headersOf(await first.frame())['receipt-id']).toBe('r1');
    // Once it disconnects the id is free.
    first.destroy();
    await first.closed;
    let next = await attempt('app');
    for (let i = 0; next.command !== 'CONNECTED' && i < 50; i++) next = await attempt('app');
    expect(next.command).toBe('CONNECTED');
  });

  it('accepts the newer CONNECT once the holder stopped its heart-beats (half-open), before the heart-beat check drops it', async () => {
    fx = await startStomp({ heartbeatMs: 100 });
    // Promises a heart-beat every 1000 ms and never sends one: dead after 1.5 intervals, dropped
    // by the receive check only after 2 (STOMP_HEARTBEAT_GRACE_MULTIPLIER).
    const first = await connect('app', '1000,0');
    const started = Date.now();
    let next = await attempt('app');
    while (next.command !== 'CONNECTED' && Date.now() - started < 5000) next = await attempt('app');
    const acceptedAfterMs = Date.now() - started;
    expect(next.command).toBe('CONNECTED');
    expect(acceptedAfterMs).toBeGreaterThanOrEqual(1400);
    // Closed by the client id check (INVALID_CLIENT_ID), not by the heart-beat timer (HEARTBEAT_TIMEOUT).
    const err = await first.frame();
    expect(err.command).toBe('ERROR');
    expect(headersOf(err).code).toBe('INVALID_CLIENT_ID');
  });

  it('with allowLinkStealing the newer CONNECT wins and the older gets an ERROR INVALID_CLIENT_ID', async () => {
    fx = await startStomp({ allowLinkStealing: true });
    const first = await connect('app');
    await connect('app');
    const err = await first.frame();
    expect(err.command).toBe('ERROR');
    expect(headersOf(err).code).toBe('INVALID_CLIENT_ID');
    expect(headersOf(err).message).toContain('allowLinkStealing');
    await first.closed;
    expect(fx.broker.listConnections().filter((c) => c.clientId === 'app')).toHaveLength(1);
  });
});
