/**
 * Networks of brokers, real broker processes (each its own cluster and database): demand over two
 * hops (ActiveMQ's consumerTTL / networkTTL > 1). A line A - B - C with connectors both ways on
 * each link, a consumer only on C and a producer only on A:
 * - with networkTTL=2, B re-advertises C's demand to A, so A forwards to B and B to C: C receives
 *   every message exactly once, on a queue and on a topic;
 * - with the default (consumerTTL 1), B advertises only its own consumers: nothing leaves A.
 * And a full mesh X, Y, Z with networkTTL=2, a queue consumer only on Z, producers on X and Y: each
 * message consumed once, at most two hops, Z forwards nothing back.
 * Every test counts sent / received / lost / duplicated.
 */
import type { BrokerProcess } from '@keel/testkit';
import { createTestDatabase, freePorts, type TestDatabase } from '@keel/testkit';
import {
  bridgesOf,
  consume,
  isLog,
  networkTestResources,
  pollUntil,
  produce,
  queueDepth,
  startNetNode,
  Tally,
  waitForLogs,
} from './helpers/network';

jest.setTimeout(90_000);

const { clients, dbs } = networkTestResources();
const OPTS = 'initialReconnectDelay=100&maxReconnectDelay=500&prefetchSize=20';

interface Line {
  A: BrokerProcess;
  B: BrokerProcess;
  C: BrokerProcess;
}

/** A ⇄ B ⇄ C, each link with a connector both ways (B has one connector listing A and C). */
async function startLine(prefix: string, query: string): Promise<Line> {
  const [pa, pb, pc] = (await freePorts(3)) as [number, number, number];
  const [da, db, dc] = await Promise.all([0, 1, 2].map(() => createTestDatabase()));
  dbs.push(da, db, dc);
  const url = (p: number): string => `tcp://127.0.0.1:${p}`;
  const [A, B, C] = await Promise.all([
    startNetNode({
      db: da.url,
      cluster: `${prefix}A`,
      port: pa,
      connectors: [`static:(${url(pb)})?${query}`],
    }),
    startNetNode({
      db: db.url,
      cluster: `${prefix}B`,
      port: pb,
      connectors: [`static:(${url(pa)},${url(pc)})?${query}`],
    }),
    startNetNode({
      db: dc.url,
      cluster: `${prefix}C`,
      port: pc,
      connectors: [`static:(${url(pb)})?${query}`],
    }),
  ]);
  await Promise.all([
    waitForLogs(A, isLog('network bridge connected')),
    waitForLogs(B, isLog('network bridge connected'), 2),
    waitForLogs(C, isLog('network bridge connected')),
  ]);
  return { A, B, C };
}

/**
 * A consumer of `destination` on C, once the demand has travelled: B forwards on C's own demand, A
 * on the demand B re-advertises (C's, one hop beyond B).
 */
async function consumeOnC({ A, B, C }: Line, destination: string, tally: Tally): Promise<void> {
  const markA = A.mark();
  const markB = B.mark();
  await consume(await clients.open(`tcp://127.0.0.1:${C.port}`), 'C', destination, tally);
  const forwarding = (remote: string) =>
    isLog('network bridge: forwarding on demand', { destination, remote });
  await Promise.all([
    waitForLogs(B, forwarding('hop2C'), 1, markB),
    waitForLogs(A, forwarding('hop2B'), 1, markA),
  ]);
}

describe('demand over two hops (networkTTL=2)', () => {
  let line: Line;

  beforeAll(async () => {
    line = await startLine('hop2', `networkTTL=2&${OPTS}`);
  });

  test('a consumer only on C gets all 300 persistent messages sent to A, each once', async () => {
    const { A, B, C } = line;
    const Q = 'queue://net.multihop';
    const N = 300;
    const tally = new Tally();
    await consumeOnC(line, Q, tally);
    const sent = await produce(await clients.open(`tcp://127.0.0.1:${A.port}`), Q, 'hop', N);
    await tally.until(N, 60_000);
    await pollUntil(
      'A and B to hold nothing',
      async () => (await queueDepth(A, 'net.multihop')) === 0 && (await queueDepth(B, 'net.multihop')) === 0,
    );
    expect(tally.counts(sent)).toEqual({ sent: N, received: N, lost: 0, duplicated: 0 });
    expect(tally.byBroker.get('C')).toBe(N);
    // C's demand is not advertised back to C (its path holds C): C forwards nothing.
    expect((await bridgesOf(C)).flatMap((b) => b.forwarding)).not.toContain(Q);
  });
  test('a topic subscriber only on C gets each of 100 messages published on A once', async () => {
    const { A } = line;
    const T = 'topic://net.multihop.t';
    const N = 100;
    const tally = new Tally();
    await consumeOnC(line, T, tally);
    const sent = await produce(await clients.open(`tcp://127.0.0.1:${A.port}`), T, 'topic', N);
    await tally.until(N, 60_000);
    expect(tally.counts(sent)).toEqual({ sent: N, received: N, lost: 0, duplicated: 0 });
  });
});

describe('full mesh of three with networkTTL=2 (queues)', () => {
  test('a consumer only on Z gets all messages sent to X and Y once, and Z forwards nothing back', async () => {
    const [px, py, pz] = (await freePorts(3)) as [number, number, number];
    const ds = await Promise.all([0, 1, 2].map(() => createTestDatabase()));
    dbs.push(...ds);
    const url = (p: number): string => `tcp://127.0.0.1:${p}`;
    const node = (i: number, cluster: string, port: number, peers: number[]): Promise<BrokerProcess> =>
      startNetNode({
        db: (ds[i] as TestDatabase).url,
        cluster,
        port,
        connectors: [`static:(${peers.map(url).join(',')})?networkTTL=2&${OPTS}`],
      });
    const [X, Y, Z] = await Promise.all([
      node(0, 'meshX', px, [py, pz]),
      node(1, 'meshY', py, [px, pz]),
      node(2, 'meshZ', pz, [px, py]),
    ]);
    await Promise.all([X, Y, Z].map((n) => waitForLogs(n, isLog('network bridge connected'), 2)));
    const Q = 'queue://net.mesh2';
    const N = 200;
    const tally = new Tally();
    const markX = X.mark();
    const markY = Y.mark();
    await consume(await clients.open(url(pz)), 'Z', Q, tally);
    // X and Y forward to Z (its own demand) and to each other (Z's, re-advertised).
    await Promise.all([
      waitForLogs(X, isLog('network bridge: forwarding on demand', { destination: Q }), 2, markX),
      waitForLogs(Y, isLog('network bridge: forwarding on demand', { destination: Q }), 2, markY),
    ]);
    const [sx, sy] = await Promise.all([
      produce(await clients.open(url(px)), Q, 'x', N),
      produce(await clients.open(url(py)), Q, 'y', N),
    ]);
    const sent = [...sx, ...sy];
    await tally.until(2 * N, 60_000);
    await pollUntil(
      'X and Y to hold nothing',
      async () => (await queueDepth(X, 'net.mesh2')) === 0 && (await queueDepth(Y, 'net.mesh2')) === 0,
    );
    expect(tally.counts(sent)).toEqual({ sent: 2 * N, received: 2 * N, lost: 0, duplicated: 0 });
    // Z's demand never comes back to Z (paths holding Z are ignored): it forwards nothing.
    const fromZ = await bridgesOf(Z);
    expect(fromZ.flatMap((b) => b.forwarding)).not.toContain(Q);
    expect(fromZ.reduce((n, b) => n + b.forwarded, 0)).toBe(0);
    // Each message took at most two hops (X → Y → Z or Y → X → Z): no forwarding forever.
    const forwarded = [...(await bridgesOf(X)), ...(await bridgesOf(Y))].reduce((n, b) => n + b.forwarded, 0);
    expect(forwarded).toBeGreaterThanOrEqual(2 * N);
    expect(forwarded).toBeLessThanOrEqual(4 * N);
  });
});

describe('demand over one hop only (default consumerTTL 1)', () => {
  let line: Line;

  beforeAll(async () => {
    line = await startLine('hop1', OPTS);
  });

  test('a consumer only on C: B does not re-advertise it, the 50 messages sent to A stay on A', async () => {
    const { A, B, C } = line;
    const Q = 'queue://net.onehop';
    const N = 50;
    const tally = new Tally();
    const markA = A.mark();
    const markB = B.mark();
    await consume(await clients.open(`tcp://127.0.0.1:${C.port}`), 'C', Q, tally);
    await waitForLogs(
      B,
      isLog('network bridge: forwarding on demand', { destination: Q, remote: 'hop1C' }),
      1,
      markB,
    );
    // A barrier: B's advisories reach A in order, so once A forwards on this later demand of B's,
    // a re-advertisement of C's demand (had there been one) would have arrived before it.
    const barrier = new Tally();
    await consume(await clients.open(`tcp://127.0.0.1:${B.port}`), 'B', 'queue://net.barrier', barrier);
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: 'queue://net.barrier', remote: 'hop1B' }),
      1,
      markA,
    );
    const sent = await produce(await clients.open(`tcp://127.0.0.1:${A.port}`), Q, 'one', N);
    expect((await bridgesOf(A)).flatMap((b) => b.forwarding)).not.toContain(Q);
    expect(await queueDepth(A, 'net.onehop')).toBe(N);
    expect(tally.counts(sent)).toEqual({ sent: N, received: 0, lost: N, duplicated: 0 });
  });
});
