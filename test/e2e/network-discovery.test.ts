/**
 * Multicast discovery with real broker processes, on loopback only (group 239.255.2.3 on a free
 * port, interface 127.0.0.1, multicast TTL 0): two clusters with `multicast://` connectors find
 * each other, bridge both ways on demand, and drop the bridge when the peer's announcements stop
 * (SIGKILL). Counts sent / received / lost / duplicated.
 */
import { createSocket } from 'node:dgram';
import type { BrokerProcess } from '@keel/testkit';
import { createTestDatabase, freePorts } from '@keel/testkit';
import {
  bridgesOf,
  consume,
  isLog,
  logTime,
  networkTestResources,
  produce,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(60_000);

const { clients, dbs } = networkTestResources();

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', () => resolve()));
  const { port } = s.address();
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test('multicast://: peers discovered, messages forwarded on demand, bridge dropped when announcements stop', async () => {
  const Q = 'queue://net.discovered';
  const udp = await freeUdpPort();
  const connector = `multicast://239.255.2.3:${udp}?interface=127.0.0.1&timeToLive=0&keepAliveInterval=100`;
  const [p1, p2] = (await freePorts(2)) as [number, number];
  const [d1, d2] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dbs.push(d1, d2);
  const [east, west]: BrokerProcess[] = await Promise.all([
    startNetNode({ db: d1.url, cluster: 'mcEast', port: p1, connectors: [connector] }),
    startNetNode({ db: d2.url, cluster: 'mcWest', port: p2, connectors: [connector] }),
  ]);
  // Each finds the other (never itself) and links a bridge to the announced URL.
  const found = await waitForLogs(east, isLog('network peer discovered', { cluster: 'mcWest' }));
  expect(found.url).toBe(`tcp://127.0.0.1:${p2}`);
  await waitForLogs(west, isLog('network peer discovered', { cluster: 'mcEast' }));
  await Promise.all([
    waitForLogs(east, isLog('network bridge connected', { remote: 'mcWest' })),
    waitForLogs(west, isLog('network bridge connected', { remote: 'mcEast' })),
  ]);
  expect(east.logs.some((e) => e.msg === 'network peer discovered' && e.cluster === 'mcEast')).toBe(false);

  const tally = new Tally();
  const mark = east.mark();
  await consume(await clients.open(`tcp://127.0.0.1:${p2}`), 'west', Q, tally, { prefetch: 50 });
  await waitForLogs(
    east,
    isLog('network bridge: forwarding on demand', { destination: Q, remote: 'mcWest' }),
    1,
    mark,
  );
  const sent = await produce(await clients.open(`tcp://127.0.0.1:${p1}`), Q, 'mc', 200);
  await tally.until(sent.length);
  expect(tally.counts(sent)).toEqual({ sent: 200, received: 200, lost: 0, duplicated: 0 });
  expect(Object.fromEntries(tally.byBroker)).toEqual({ west: 200 });

  // west dies without a word: east drops it after 10 missed announcements (~1 s here).
  const goneMark = east.mark();
  west.kill('SIGKILL');
  const killedAt = Date.now();
  await west.exited;
  const gone = await waitForLogs(
    east,
    isLog('network peer gone', { cluster: 'mcWest' }),
    1,
    goneMark,
    10_000,
  );
  expect(gone.reason).toBe('announcements stopped');
  // eslint-disable-next-line no-console
  console.log(
    `discovery: peer dropped ${logTime(gone) - killedAt} ms after its SIGKILL (keepAliveInterval 100 ms)`,
  );
  expect(await bridgesOf(east)).toEqual([]);
});
