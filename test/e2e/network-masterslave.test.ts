/**
 * A network bridge to a master/slave pair, real broker processes: cluster msA = two nodes on one
 * database (a1 master, a2 slave), cluster msB = one node with `masterslave:(tcp://a1,tcp://a2)`.
 * A consumer on msA through a failover client, a producer on msB; a1 SIGKILLed mid-stream: the
 * bridge rides out the takeover, relearns msA's demand from a2 and forwarding resumes.
 * Counts sent / received / lost / duplicated.
 */
import type { BrokerProcess } from '@keel/testkit';
import { createTestDatabase, freePorts } from '@keel/testkit';
import {
  bridgesOf,
  consume,
  isLog,
  logTime,
  networkTestResources,
  pollUntil,
  produce,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(60_000);

const { clients, dbs } = networkTestResources();

test('bridge B→(a1,a2) over masterslave:, a1 SIGKILLed mid-stream: resumes on a2, 0 lost, 0 duplicated', async () => {
  const Q = 'queue://net.pair';
  const [pa1, pa2, pb] = (await freePorts(3)) as [number, number, number];
  const [dA, dB] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dbs.push(dA, dB);
  const a1 = await startNetNode({ db: dA.url, cluster: 'msA', name: 'a1', port: pa1 });
  const a2 = await startNetNode({ db: dA.url, cluster: 'msA', name: 'a2', port: pa2 }, 'slave');
  // debug: B logs the bridge's failover transport and a2 logs each resend its dedup drops.
  const B: BrokerProcess = await startNetNode({
    db: dB.url,
    cluster: 'msB',
    port: pb,
    connectors: [`masterslave:(tcp://127.0.0.1:${pa1},tcp://127.0.0.1:${pa2})?prefetchSize=50`],
  });
  await waitForLogs(B, isLog('network bridge connected', { remote: 'msA' }));

  const tally = new Tally();
  const consumerConn = await clients.open(
    `failover:(tcp://127.0.0.1:${pa1},tcp://127.0.0.1:${pa2})?randomize=false&initialReconnectDelay=10&maxReconnectDelay=200`,
  );
  const mark = B.mark();
  // A little slow (2 ms a message) so that the kill lands mid-stream.
  await consume(consumerConn, 'msA', Q, tally, { prefetch: 20, delayMs: 2 });
  await waitForLogs(
    B,
    isLog('network bridge: forwarding on demand', { destination: Q, remote: 'msA' }),
    1,
    mark,
  );

  const producer = await clients.open(`tcp://127.0.0.1:${pb}`);
  const sending = produce(producer, Q, 'ms', 1500);
  await tally.until(300);
  const relearnMark = B.mark();
  a1.kill('SIGKILL');
  const killedAt = Date.now();
  const atKill = tally.total;
  expect((await a1.exited).signal).toBe('SIGKILL');
  const sent = await sending;
  const tookOver = logTime(await a2.waitForRole('master', 20_000));
  // The bridge re-subscribed to the advisories on a2 and a2's snapshot confirmed the demand.
  const relearned = await waitForLogs(
    B,
    isLog('network bridge: demand relearned', { remote: 'msA' }),
    1,
    relearnMark,
  );
  expect(relearned.confirmed).toEqual([Q]);
  expect(relearned.dropped).toEqual([]);
  await tally.until(sent.length, 40_000);
  // eslint-disable-next-line no-console
  console.log(
    `pair: ${atKill} consumed before the kill; a2 master ${tookOver - killedAt} ms after it; demand relearned at +${logTime(relearned) - killedAt} ms; all ${sent.length} consumed at +${Date.now() - killedAt} ms`,
  );
  expect(atKill).toBeLessThan(sent.length);
  expect(tally.counts(sent)).toEqual({ sent: 1500, received: 1500, lost: 0, duplicated: 0 });
  // One link for the whole run: the failover transport rode out the takeover. (`forwarded` moves
  // on msA's confirmation, which may come just after its consumer got the message.)
  await pollUntil('B counts 1500 forwarded', async () => ((await bridgesOf(B))[0]?.forwarded ?? 0) >= 1500);
  const [bridge] = await bridgesOf(B);
  expect(bridge).toMatchObject({ remoteName: 'msA', state: 'connected', connects: 1, forwarding: [Q] });
  expect(bridge?.forwarded).toBeGreaterThanOrEqual(1500);
});
