import { createSocket } from 'node:dgram';
import { parseNetworkConnector } from './connector-config';
import { type DiscoveredPeer, MulticastDiscoveryAgent } from './multicast-discovery';

/** A UDP port free right now on 127.0.0.1. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface Events {
  up: DiscoveredPeer[];
  down: { peer: DiscoveredPeer; reason: string }[];
  waiters: (() => void)[];
}

function agent(uri: string, cluster: string, url: string | null, ev: Events): MulticastDiscoveryAgent {
  const c = parseNetworkConnector(uri);
  if (c.discovery.kind !== 'multicast') throw new Error('not multicast');
  const wake = () => {
    for (const w of ev.waiters.splice(0)) w();
  };
  return new MulticastDiscoveryAgent({
    discovery: c.discovery,
    cluster,
    name: `${cluster}-1`,
    url,
    onPeerUp: (p) => {
      ev.up.push(p);
      wake();
    },
    onPeerDown: (peer, reason) => {
      ev.down.push({ peer, reason });
      wake();
    },
  });
}

function until(ev: Events, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out')), timeoutMs);
    const check = () => {
      if (cond()) {
        clearTimeout(t);
        resolve();
      } else ev.waiters.push(check);
    };
    check();
  });
}

const newEvents = (): Events => ({ up: [], down: [], waiters: [] });

describe('MulticastDiscoveryAgent (loopback only)', () => {
  const agents: MulticastDiscoveryAgent[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.stop()));
  });

  it('peers find each other, ignore their own cluster and other groups, and see a stop at once', async () => {
    const port = await freeUdpPort();
    // Announcements every 100 ms, so a peer is timed out after 1 s: room for a loaded machine to
    // deliver B's "dead" announcement first (the reason below tells the two apart).
    const base = `multicast://239.255.2.3:${port}?interface=127.0.0.1&timeToLive=0&keepAliveInterval=100`;
    const a = newEvents();
    const b = newEvents();
    const self = newEvents();
    const other = newEvents();
    const A = agent(base, 'east', 'tcp://127.0.0.1:1001', a);
    const B = agent(base, 'west', 'tcp://127.0.0.1:1002', b);
    // Same cluster as A, listening only: it hears B, never A (nor itself).
    const A2 = agent(base, 'east', null, self);
    const O = agent(`${base}&group=other`, 'north', 'tcp://127.0.0.1:1004', other);
    agents.push(A, B, A2, O);
    await Promise.all([A.start(), B.start(), A2.start(), O.start()]);
    await until(a, () => a.up.length >= 1);
    await until(b, () => b.up.length >= 1);
    await until(self, () => self.up.length >= 1);
    // A few more announcement rounds: nothing else shows up.
    await new Promise((r) => setTimeout(r, 200));
    expect(a.up.map((p) => p.url)).toEqual(['tcp://127.0.0.1:1002']);
    expect(b.up.map((p) => p.url)).toEqual(['tcp://127.0.0.1:1001']);
    expect(other.up).toEqual([]);
    expect(self.up.map((p) => p.cluster)).toEqual(['west']);

    // B stops: it announces "dead", A drops it without waiting for the timeout.
    agents.splice(agents.indexOf(B), 1);
    await B.stop();
    await until(a, () => a.down.length >= 1);
    expect(a.down[0]).toMatchObject({ peer: { cluster: 'west' }, reason: 'announced stop' });
  });

  it('drops a peer whose announcements stop (10 missed intervals) and follows a URL change', async () => {
    const port = await freeUdpPort();
    const base = `multicast://239.255.2.3:${port}?interface=127.0.0.1&timeToLive=0&keepAliveInterval=30`;
    const a = newEvents();
    const A = agent(base, 'east', null, a); // listen only
    agents.push(A);
    await A.start();
    // A raw announcer: alive from tcp://…:2001, then from …:2002 (a takeover), then silence.
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
    s.setMulticastInterface('127.0.0.1');
    s.setMulticastLoopback(true);
    const say = (url: string) =>
      new Promise<void>((resolve) =>
        s.send(
          JSON.stringify({ keel: 1, type: 'alive', group: 'default', cluster: 'west', name: 'w', url }),
          port,
          '239.255.2.3',
          () => resolve(),
        ),
      );
    await say('tcp://127.0.0.1:2001');
    await until(a, () => a.up.length === 1);
    // Taken before the last announcement is sent, so it is no later than the moment A hears it: a
    // loaded machine may run the test's next line long after A recorded the announcement.
    const silentFrom = Date.now();
    await say('tcp://127.0.0.1:2002');
    await until(a, () => a.up.length === 2);
    expect(a.down[0]).toMatchObject({
      peer: { url: 'tcp://127.0.0.1:2001' },
      reason: 'replaced by tcp://127.0.0.1:2002',
    });
    await until(a, () => a.down.length === 2, 2000);
    expect(a.down[1]).toMatchObject({
      peer: { url: 'tcp://127.0.0.1:2002' },
      reason: 'announcements stopped',
    });
    expect(Date.now() - silentFrom).toBeGreaterThanOrEqual(10 * 30);
    await new Promise<void>((resolve) => s.close(() => resolve()));
  });
});
