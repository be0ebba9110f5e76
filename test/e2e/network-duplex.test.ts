/**
 * Duplex network connectors (ActiveMQ `duplex=true`), real broker processes, each its own cluster
 * and database. A has one connector to B with duplex=true, through a fault proxy; B has none. The
 * single connection carries A → B and B → A: consumers on A get what is produced on B and the other
 * way round. Then the connection is cut (proxy) and B is SIGKILLed and restarted: both directions
 * resume. Every test counts sent / received / lost / duplicated.
 */
import type { BrokerProcess, FaultProxy, TestDatabase } from '@keel/testkit';
import {
  bridgesOf,
  consume,
  isLog,
  networkTestResources,
  pollUntil,
  produce,
  startNetNode,
  startProxiedPair,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(90_000);

const { clients, dbs } = networkTestResources(() => proxy?.close());
let proxy: FaultProxy | null = null;

/** Both ends of the link have nothing in flight: a resend after a cut would have shown by now. */
function bothIdle(a: BrokerProcess, b: BrokerProcess): Promise<void> {
  return pollUntil(
    'both bridges idle',
    async () => (await bridgesOf(a))[0]?.inflight === 0 && (await bridgesOf(b))[0]?.inflight === 0,
    10_000,
  );
}

describe('duplex=true: one connector, both directions', () => {
  let A: BrokerProcess;
  let B: BrokerProcess;
  let dbB: TestDatabase;
  let portB: number;

  beforeAll(async () => {
    ({ A, B, dbB, portB, proxy } = await startProxiedPair({
      clusterA: 'duplexA',
      clusterB: 'duplexB',
      query: 'duplex=true&prefetchSize=50&initialReconnectDelay=100&maxReconnectDelay=500',
      dbs,
    }));
    await waitForLogs(A, isLog('duplex bridge: the peer forwards over this link'));
    await waitForLogs(B, isLog('duplex bridge accepted', { remote: 'duplexA' }));
  });

  test('consumers on A get what B produces and consumers on B what A produces; B lists the accepted bridge', async () => {
    const toA = 'queue://dx.toA';
    const toB = 'queue://dx.toB';
    const onA = new Tally();
    const onB = new Tally();
    const markA = A.mark();
    const markB = B.mark();
    await consume(await clients.open(`tcp://127.0.0.1:${A.port}`), 'A', toA, onA);
    await consume(await clients.open(`tcp://127.0.0.1:${B.port}`), 'B', toB, onB);
    // Demand known on both sides: B forwards toA (learned over A's connection), A forwards toB.
    await waitForLogs(
      B,
      isLog('network bridge: forwarding on demand', { destination: toA, remote: 'duplexA' }),
      1,
      markB,
    );
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: toB, remote: 'duplexB' }),
      1,
      markA,
    );

    const [sentToA, sentToB] = await Promise.all([
      produce(await clients.open(`tcp://127.0.0.1:${B.port}`), toA, 'b2a', 300),
      produce(await clients.open(`tcp://127.0.0.1:${A.port}`), toB, 'a2b', 300),
    ]);
    await Promise.all([onA.until(300), onB.until(300)]);
    expect(onA.counts(sentToA)).toEqual({ sent: 300, received: 300, lost: 0, duplicated: 0 });
    expect(onB.counts(sentToB)).toEqual({ sent: 300, received: 300, lost: 0, duplicated: 0 });

    // One link: A's connector (duplex) and B's accepted end of it; no connector on B. The counters
    // move on the peer's confirmation, which may come just after its consumer got the message.
    await pollUntil('both ends count 300 forwarded', async () => {
      const [x] = await bridgesOf(A);
      const [y] = await bridgesOf(B);
      return (x?.forwarded ?? 0) >= 300 && (y?.forwarded ?? 0) >= 300;
    });
    const [a] = await bridgesOf(A);
    const bs = await bridgesOf(B);
    expect(bs).toHaveLength(1);
    expect(a).toMatchObject({
      remoteName: 'duplexB',
      state: 'connected',
      duplex: true,
      accepted: false,
      connects: 1,
    });
    expect(bs[0]).toMatchObject({ remoteName: 'duplexA', state: 'connected', duplex: true, accepted: true });
    expect(a!.forwarded).toBeGreaterThanOrEqual(300);
    expect(a!.received).toBeGreaterThanOrEqual(300);
    expect(bs[0]!.forwarded).toBeGreaterThanOrEqual(300);
    expect(bs[0]!.forwarding).toContain(toA);
  });

  test('the connection is cut mid-flow: both directions stop, and resume when A relinks (0 lost, 0 doubled)', async () => {
    const toA = 'queue://dx.cut.toA';
    const toB = 'queue://dx.cut.toB';
    const onA = new Tally();
    const onB = new Tally();
    const markA = A.mark();
    const markB = B.mark();
    await consume(await clients.open(`tcp://127.0.0.1:${A.port}`), 'A', toA, onA, {
      prefetch: 20,
      delayMs: 1,
    });
    await consume(await clients.open(`tcp://127.0.0.1:${B.port}`), 'B', toB, onB, {
      prefetch: 20,
      delayMs: 1,
    });
    await waitForLogs(B, isLog('network bridge: forwarding on demand', { destination: toA }), 1, markB);
    await waitForLogs(A, isLog('network bridge: forwarding on demand', { destination: toB }), 1, markA);

    const prodA = await clients.open(`tcp://127.0.0.1:${A.port}`);
    const prodB = await clients.open(`tcp://127.0.0.1:${B.port}`);
    const first = Promise.all([produce(prodB, toA, 'b2a-1', 400), produce(prodA, toB, 'a2b-1', 400)]);
    // Cut while messages are on their way in both directions.
    await Promise.all([onA.until(50), onB.until(50)]);
    const cutMark = A.mark();
    proxy!.setMode('cut');
    await waitForLogs(A, isLog('network bridge disconnected'), 1, cutMark);
    await waitForLogs(B, isLog('duplex bridge disconnected', { remote: 'duplexA' }), 1, markB);
    const [b2a1, a2b1] = await first;
    // While cut: more on both sides; they wait where they were produced.
    const [b2a2, a2b2] = await Promise.all([
      produce(prodB, toA, 'b2a-2', 200),
      produce(prodA, toB, 'a2b-2', 200),
    ]);
    const relinkMark = A.mark();
    proxy!.setMode('pass');
    await waitForLogs(A, isLog('duplex bridge: the peer forwards over this link'), 1, relinkMark);

    const sentToA = [...b2a1, ...b2a2];
    const sentToB = [...a2b1, ...a2b2];
    await Promise.all([onA.until(600), onB.until(600)]);
    // Anything resent after the cut would show up as a duplicate now or shortly: let the links settle.
    await bothIdle(A, B);
    expect(onA.counts(sentToA)).toEqual({ sent: 600, received: 600, lost: 0, duplicated: 0 });
    expect(onB.counts(sentToB)).toEqual({ sent: 600, received: 600, lost: 0, duplicated: 0 });
    const [a] = await bridgesOf(A);
    expect(a).toMatchObject({ state: 'connected', connects: 2 });
    // The old accepted end is gone with its connection: B lists only the new one.
    const bs = await bridgesOf(B);
    expect(bs.filter((b) => b.state === 'connected')).toHaveLength(1);
  });

  test('B SIGKILLed and restarted: both directions resume, what waited on each side arrives once', async () => {
    const toA = 'queue://dx.restart.toA';
    const toB = 'queue://dx.restart.toB';
    const onA = new Tally();
    const onB = new Tally();
    const markA = A.mark();
    const markB = B.mark();
    await consume(await clients.open(`tcp://127.0.0.1:${A.port}`), 'A', toA, onA, {
      prefetch: 20,
      delayMs: 1,
    });
    // B's consumer follows B through its restart.
    const consB = await clients.open(
      `failover:(tcp://127.0.0.1:${portB})?initialReconnectDelay=50&maxReconnectDelay=200`,
    );
    await consume(consB, 'B', toB, onB, { prefetch: 20 });
    await waitForLogs(B, isLog('network bridge: forwarding on demand', { destination: toA }), 1, markB);
    await waitForLogs(A, isLog('network bridge: forwarding on demand', { destination: toB }), 1, markA);

    const prodA = await clients.open(`tcp://127.0.0.1:${A.port}`);
    const [b2a1, a2b1] = await Promise.all([
      produce(await clients.open(`tcp://127.0.0.1:${B.port}`), toA, 'b2a-1', 300),
      produce(prodA, toB, 'a2b-1', 300),
    ]);
    const killMark = A.mark();
    B.kill('SIGKILL');
    await B.exited;
    await waitForLogs(A, isLog('network bridge disconnected'), 1, killMark);
    // While B is down: 200 more for B wait on A.
    const a2b2 = await produce(prodA, toB, 'a2b-2', 200);
    B = await startNetNode({ db: dbB.url, cluster: 'duplexB', port: portB });
    await waitForLogs(A, isLog('duplex bridge: the peer forwards over this link'), 1, killMark);
    // And 200 more from the restarted B for A.
    const b2a2 = await produce(await clients.open(`tcp://127.0.0.1:${B.port}`), toA, 'b2a-2', 200);

    const sentToA = [...b2a1, ...b2a2];
    const sentToB = [...a2b1, ...a2b2];
    await Promise.all([onA.until(500, 30_000), onB.until(500, 30_000)]);
    await bothIdle(A, B);
    expect(onA.counts(sentToA)).toEqual({ sent: 500, received: 500, lost: 0, duplicated: 0 });
    expect(onB.counts(sentToB)).toEqual({ sent: 500, received: 500, lost: 0, duplicated: 0 });
  });

  test("a durable subscriber on A, offline while B publishes: B's side keeps a network durable subscription, exactly once on return", async () => {
    const T = 'topic://dx.durable';
    const tally = new Tally();
    const subscribe = async () => {
      const c = await clients.open(`tcp://127.0.0.1:${A.port}`, { clientId: 'dx-durable' });
      const s = await c.createSession({ ackMode: 'individual' });
      const consumer = await s.createConsumer(T, { durableName: 'dxd', prefetch: 50 });
      consumer.onMessage(async (m) => {
        await m.ack();
        tally.add('A', m);
      });
      return c;
    };
    const markB = B.mark();
    let sub = await subscribe();
    await waitForLogs(
      B,
      isLog('network bridge: forwarding on demand', { destination: T, durable: true }),
      1,
      markB,
    );
    const prodB = await clients.open(`tcp://127.0.0.1:${B.port}`);
    const live = await produce(prodB, T, 'live', 50);
    await tally.until(50);
    await sub.close();
    const offline = await produce(prodB, T, 'offline', 150);
    sub = await subscribe();
    await tally.until(200);
    await pollUntil('B idle', async () => (await bridgesOf(B)).every((b) => b.inflight === 0), 10_000);
    expect(tally.counts([...live, ...offline])).toEqual({ sent: 200, received: 200, lost: 0, duplicated: 0 });
    const r = await fetch(`http://127.0.0.1:${B.adminPort}/api/subscriptions`);
    const onB = ((await r.json()) as { subscriptions: { clientId: string; name: string }[] }).subscriptions;
    expect(onB).toContainEqual(
      expect.objectContaining({ clientId: 'network:duplexB->duplexA:bridge', name: 'NC-DS_dx.durable' }),
    );
    await sub.close();
  });
});
