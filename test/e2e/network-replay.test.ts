/**
 * Networks of brokers, real broker processes (each its own cluster and database):
 * - stuck messages: messages forwarded to a broker whose consumers then leave move on to a broker
 *   with consumers (replayWhenNoConsumers), without ping-pong and without any dead-lettering;
 * - bridge recovery speed with the default reconnect schedule: the receiving broker SIGKILLed and
 *   restarted ~3 s later; time from its restart to the first forwarded message.
 * Every test counts sent / received / lost / duplicated.
 */
import type { BrokerProcess } from '@keel/testkit';
import { freePorts, type TestDatabase } from '@keel/testkit';
import {
  bridgesOf,
  consume,
  isLog,
  logTime,
  networkTestResources,
  pollUntil,
  produce,
  queueDepth,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(60_000);

const { clients, database: db } = networkTestResources();

describe('stuck messages (replayWhenNoConsumers)', () => {
  let A: BrokerProcess;
  let C: BrokerProcess;

  beforeAll(async () => {
    const [pa, pc] = (await freePorts(2)) as [number, number];
    const [da, dc] = await Promise.all([db(), db()]);
    // Default options except a small window, so C holds a backlog its slow consumer has not taken.
    [A, C] = await Promise.all([
      startNetNode({
        db: da.url,
        cluster: 'replayA',
        port: pa,
        connectors: [`static:(tcp://127.0.0.1:${pc})?prefetchSize=20`],
      }),
      startNetNode({
        db: dc.url,
        cluster: 'replayC',
        port: pc,
        connectors: [`static:(tcp://127.0.0.1:${pa})?prefetchSize=20`],
      }),
    ]);
    await Promise.all([A, C].map((n) => waitForLogs(n, isLog('network bridge connected'))));
  });

  test('a slow consumer on C takes some and leaves: the rest moves to A within 5 s, 0 lost, 0 doubled, none left on C', async () => {
    const Q = 'queue://net.replay';
    const tally = new Tally();
    // 1. Demand only on C (slow: 20 ms a message, one at a time, stops after 20).
    const markA = A.mark();
    const onC = await consume(await clients.open(`tcp://127.0.0.1:${C.port}`), 'C', Q, tally, {
      prefetch: 1,
      delayMs: 20,
      limit: 20,
    });
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: Q, remote: 'replayC' }),
      1,
      markA,
    );
    // 2. 300 sent on A, all forwarded to C (A has no consumer): they pile up on C.
    const sent = await produce(await clients.open(`tcp://127.0.0.1:${A.port}`), Q, 'rp', 300);
    await pollUntil('A forwarded all 300 to C', async () => (await bridgesOf(A))[0]?.forwarded === 300);
    await tally.until(20);
    expect(await queueDepth(A, 'net.replay')).toBe(0);
    // 3. A consumer on A: C's bridge to A forwards on its demand, but C still has its own consumer,
    //    so the messages (brokerPath [replayA]) stay on C.
    const markC = C.mark();
    await consume(await clients.open(`tcp://127.0.0.1:${A.port}`), 'A', Q, tally, { prefetch: 50 });
    await waitForLogs(
      C,
      isLog('network bridge: forwarding on demand', { destination: Q, remote: 'replayA' }),
      1,
      markC,
    );
    expect(tally.byBroker.get('A') ?? 0).toBe(0);
    expect(await queueDepth(C, 'net.replay')).toBe(280);
    // 4. C's consumer leaves: C has no consumer, A has one, the 280 are replayed to A.
    const left = Date.now();
    await onC.close();
    await pollUntil('C empty', async () => (await queueDepth(C, 'net.replay')) === 0, 20_000);
    const movedMs = Date.now() - left;
    await tally.until(300, 10_000);
    // eslint-disable-next-line no-console
    console.log(
      `replay: 280 stranded messages moved from C to A in ${movedMs} ms (all consumed on A after ${Date.now() - left} ms)`,
    );
    // Catches replay that never starts; the speed is printed above (docs/networks.md), not asserted.
    expect(movedMs).toBeLessThan(10_000);
    expect(tally.counts(sent)).toEqual({ sent: 300, received: 300, lost: 0, duplicated: 0 });
    expect(Object.fromEntries(tally.byBroker)).toEqual({ C: 20, A: 280 });
    expect(await queueDepth(C, 'net.replay')).toBe(0);
    expect(await queueDepth(A, 'net.replay')).toBe(0);
    // No ping-pong: A forwarded each message once (to C), C each of the 280 once (back to A).
    expect((await bridgesOf(A))[0]?.forwarded).toBe(300);
    expect((await bridgesOf(C))[0]?.forwarded).toBe(280);
    // Nothing dead-lettered by the network (the replayed copies are new messages to A's dedup).
    for (const n of [A, C]) {
      expect(await queueDepth(n, 'ActiveMQ.DLQ')).toBe(0);
      expect(await queueDepth(n, 'DLQ.net.replay')).toBe(0);
      expect(n.logs.filter((e) => e.msg === 'duplicate send dropped').length).toBe(0);
    }
  });
});

describe('bridge recovery speed (default reconnect schedule)', () => {
  let P: BrokerProcess;
  let R: BrokerProcess;
  let rdb: TestDatabase;

  beforeAll(async () => {
    const [pp, pr] = (await freePorts(2)) as [number, number];
    const [dp, dr] = await Promise.all([db(), db()]);
    rdb = dr;
    [P, R] = await Promise.all([
      // No reconnect options: Keel's defaults (100 ms, ×2, at most 500 ms) are under test.
      startNetNode({
        db: dp.url,
        cluster: 'speedP',
        port: pp,
        connectors: [`static:(tcp://127.0.0.1:${pr})`],
      }),
      startNetNode({ db: dr.url, cluster: 'speedR', port: pr }),
    ]);
    await waitForLogs(P, isLog('network bridge connected'));
  });

  test('receiver SIGKILLed, restarted after ~3 s: forwarding resumes within ~1 s of its restart', async () => {
    const Q = 'queue://net.speed';
    const tally = new Tally();
    const mark = P.mark();
    // The consumer reconnects fast too, so what is measured is the bridge.
    const consumerConn = await clients.open(
      `failover:(tcp://127.0.0.1:${R.port})?initialReconnectDelay=10&maxReconnectDelay=100`,
    );
    await consume(consumerConn, 'R', Q, tally, { prefetch: 50 });
    await waitForLogs(P, isLog('network bridge: forwarding on demand', { destination: Q }), 1, mark);
    const producer = await clients.open(`tcp://127.0.0.1:${P.port}`);
    const before = await produce(producer, Q, 'up', 100);
    await tally.until(100);

    R.kill('SIGKILL');
    await R.exited;
    const down = Date.now();
    // While R is down: 200 more are sent on P; they wait there.
    const during = await produce(producer, Q, 'down', 200);
    const rest = 3_000 - (Date.now() - down);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest)); // R stays down ~3 s (the scenario)
    // The bridge's count of messages the peer confirmed, polled every 20 ms from now on.
    const base = (await bridgesOf(P))[0]?.forwarded ?? 0;
    let firstConfirmedAt = 0;
    const confirmed = pollUntil(
      'a forward confirmed by the restarted peer',
      async () => {
        if (((await bridgesOf(P))[0]?.forwarded ?? 0) <= base) return false;
        firstConfirmedAt = Date.now();
        return true;
      },
      30_000,
      20,
    );
    const pMark = P.mark();
    R = await startNetNode({ db: rdb.url, cluster: 'speedR', port: R.port });
    const listening = await R.waitForLog(isLog('listening for clients'), 5_000);
    const relinked = await waitForLogs(P, isLog('network bridge connected'), 1, pMark);
    const demand = await waitForLogs(
      P,
      isLog('network bridge: forwarding on demand', { destination: Q }),
      1,
      pMark,
    );
    await confirmed;
    await tally.until(300, 20_000);
    const forwardMs = firstConfirmedAt - logTime(listening);
    const firstForwarded = Math.min(...during.map((k) => tally.firstAt.get(k) ?? Number.POSITIVE_INFINITY));
    const relinkMs = logTime(relinked) - logTime(listening);
    const resumeMs = firstForwarded - logTime(listening);
    // eslint-disable-next-line no-console
    console.log(
      `recovery: peer down ${Date.now() - down} ms in all; bridge relinked ${relinkMs} ms, demand relearned ${logTime(demand) - logTime(listening)} ms, first message forwarded (confirmed by the peer) ${forwardMs} ms and first forwarded message consumed ${resumeMs} ms after the peer accepted connections`,
    );
    // Bounds that catch a bridge that does not come back, not a slow machine: the figures are
    // printed above and measured by network-bench (docs/networks.md), never asserted as speed here
    // (the suite must pass beside CPU-bound processes, issue #17.7).
    expect(relinkMs).toBeLessThan(10_000);
    expect(forwardMs).toBeLessThan(10_000);
    expect(resumeMs).toBeLessThan(15_000);
    const sent = [...before, ...during];
    expect(tally.counts(sent)).toEqual({ sent: 300, received: 300, lost: 0, duplicated: 0 });
  });
});
