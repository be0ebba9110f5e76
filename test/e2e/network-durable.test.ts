/**
 * Durable subscriptions across a network of brokers, real broker processes (each its own cluster
 * and database). A has a connector to B; a durable subscriber on B makes A's bridge keep a durable
 * subscription of its own (`NC-DS_<topic>`) and forward into B's topic, where B's durable
 * subscription keeps what arrives while its subscriber is offline. Checked: the subscriber offline
 * while A publishes; B SIGKILLed and restarted while A publishes; the subscription removed on B
 * removes A's. Every test counts sent / received / lost / duplicated.
 */
import { type Connection, connect } from '@keel/client';
import type { BrokerProcess, FaultProxy, TestDatabase } from '@keel/testkit';
import {
  bridgesOf,
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
const OPTS = 'prefetchSize=50&initialReconnectDelay=100&maxReconnectDelay=500';

interface DurableRow {
  clientId: string;
  name: string;
  topic: string;
  active: boolean;
  pending: number;
}

async function durablesOf(proc: BrokerProcess): Promise<DurableRow[]> {
  const r = await fetch(`http://127.0.0.1:${proc.adminPort}/api/subscriptions`);
  return ((await r.json()) as { subscriptions: DurableRow[] }).subscriptions;
}

/** A durable subscriber (client id + name) counting into `tally`; individual acks, counted once confirmed. */
async function subscribeDurable(
  url: string,
  clientId: string,
  topic: string,
  name: string,
  tally: Tally,
): Promise<Connection> {
  const c = await connect(url, { clientId, heartbeatMs: 1000 });
  c.on('error', () => {});
  const s = await c.createSession({ ackMode: 'individual' });
  const consumer = await s.createConsumer(topic, { durableName: name, prefetch: 50 });
  consumer.onMessage(async (m) => {
    await m.ack();
    tally.add('B', m);
  });
  return c;
}

describe('durable subscriptions across the network', () => {
  let A: BrokerProcess;
  let B: BrokerProcess;
  let dbB: TestDatabase;
  let portB: number;

  beforeAll(async () => {
    // A reaches B through a proxy, so the link can be cut while both brokers run.
    ({ A, B, dbB, portB, proxy } = await startProxiedPair({
      clusterA: 'durA',
      clusterB: 'durB',
      query: OPTS,
      dbs,
    }));
    await waitForLogs(A, isLog('network bridge connected'));
  });

  test('subscriber on B offline while A publishes: it gets exactly the messages when it returns', async () => {
    const T = 'topic://dur.news';
    const url = `tcp://127.0.0.1:${B.port}`;
    const tally = new Tally();
    const mark = A.mark();
    let sub = await subscribeDurable(url, 'dur-sub-1', T, 'd1', tally);
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: T, durable: true }),
      1,
      mark,
    );
    const prodA = await clients.open(`tcp://127.0.0.1:${A.port}`);
    const live = await produce(prodA, T, 'live', 50);
    await tally.until(50);

    // Offline: the subscription stays on B (inactive) and A keeps forwarding into it.
    await sub.close();
    const offline = await produce(prodA, T, 'offline', 200);
    await pollUntil('200 pending in d1 on B', async () => {
      const d = (await durablesOf(B)).find((x) => x.name === 'd1');
      return d !== undefined && !d.active && d.pending === 200;
    });
    sub = await subscribeDurable(url, 'dur-sub-1', T, 'd1', tally);
    await tally.until(250);
    await pollUntil(
      'd1 drained',
      async () => (await durablesOf(B)).find((x) => x.name === 'd1')?.pending === 0,
    );
    await sub.close();
    expect(tally.counts([...live, ...offline])).toEqual({ sent: 250, received: 250, lost: 0, duplicated: 0 });
    // A holds one network durable subscription for B's, named after the bridge and the topic.
    const onA = (await durablesOf(A)).filter((d) => d.topic === 'dur.news');
    expect(onA).toEqual([
      expect.objectContaining({
        clientId: 'network:durA->durB:bridge',
        name: 'NC-DS_dur.news',
        active: true,
      }),
    ]);
  });

  test('B SIGKILLed while its subscriber is offline and A publishes: after the restart it gets each exactly once', async () => {
    const T = 'topic://dur.restart';
    const tally = new Tally();
    const mark = A.mark();
    let sub = await subscribeDurable(`tcp://127.0.0.1:${portB}`, 'dur-sub-2', T, 'd2', tally);
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: T, durable: true }),
      1,
      mark,
    );
    await sub.close();
    const prodA = await clients.open(`tcp://127.0.0.1:${A.port}`);
    // Before the kill: forwarded to B, kept in d2 there (B's store).
    const before = await produce(prodA, T, 'before', 150);
    await pollUntil(
      '150 pending in d2 on B',
      async () => (await durablesOf(B)).find((x) => x.name === 'd2')?.pending === 150,
    );
    const killMark = A.mark();
    B.kill('SIGKILL');
    await B.exited;
    await waitForLogs(A, isLog('network bridge disconnected'), 1, killMark);
    // While B is down: kept in A's network durable subscription (inactive now).
    const during = await produce(prodA, T, 'during', 200);
    const onA = (await durablesOf(A)).find((d) => d.topic === 'dur.restart');
    expect(onA).toMatchObject({ name: 'NC-DS_dur.restart', active: false, pending: 200 });

    B = await startNetNode({ db: dbB.url, cluster: 'durB', port: portB });
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: T, durable: true }),
      1,
      killMark,
    );
    // And some more after the restart.
    const after = await produce(prodA, T, 'after', 50);
    sub = await subscribeDurable(`tcp://127.0.0.1:${portB}`, 'dur-sub-2', T, 'd2', tally);
    await tally.until(400, 30_000);
    await pollUntil(
      'd2 drained',
      async () => (await durablesOf(B)).find((x) => x.name === 'd2')?.pending === 0,
    );
    await pollUntil(
      "A's network durable drained",
      async () => (await durablesOf(A)).find((d) => d.topic === 'dur.restart')?.pending === 0,
    );
    expect(tally.counts([...before, ...during, ...after])).toEqual({
      sent: 400,
      received: 400,
      lost: 0,
      duplicated: 0,
    });
    await sub.close();
  });

  test("unsubscribing on B removes A's network durable subscription; later messages are not kept", async () => {
    const T = 'topic://dur.gone';
    const tally = new Tally();
    const mark = A.mark();
    const sub = await subscribeDurable(`tcp://127.0.0.1:${B.port}`, 'dur-sub-3', T, 'd3', tally);
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: T, durable: true }),
      1,
      mark,
    );
    expect((await durablesOf(A)).some((d) => d.topic === 'dur.gone')).toBe(true);
    await sub.close();
    const owner = await connect(`tcp://127.0.0.1:${B.port}`, { clientId: 'dur-sub-3' });
    await owner.removeDurable('d3');
    await owner.close();
    await waitForLogs(
      A,
      isLog('network bridge: network durable subscription removed', { destination: T }),
      1,
      mark,
    );
    expect((await durablesOf(A)).some((d) => d.topic === 'dur.gone')).toBe(false);
    // No demand any more: nothing is forwarded or kept for B.
    const before = (await bridgesOf(A))[0]!.forwarded;
    await produce(await clients.open(`tcp://127.0.0.1:${A.port}`), T, 'none', 20);
    expect((await bridgesOf(A))[0]!.forwarded).toBe(before);
    expect((await durablesOf(B)).some((d) => d.name === 'd3')).toBe(false);
  });

  test("a subscription removed on B while the link is cut: A removes its own once relinked (B's snapshot)", async () => {
    const T = 'topic://dur.stale';
    const tally = new Tally();
    const mark = A.mark();
    const sub = await subscribeDurable(`tcp://127.0.0.1:${B.port}`, 'dur-sub-4', T, 'd4', tally);
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: T, durable: true }),
      1,
      mark,
    );
    await sub.close();
    proxy!.setMode('cut');
    await waitForLogs(A, isLog('network bridge disconnected'), 1, mark);
    const owner = await connect(`tcp://127.0.0.1:${B.port}`, { clientId: 'dur-sub-4' });
    await owner.removeDurable('d4');
    await owner.close();
    // Published while cut: kept by A's network durable subscription for now.
    await produce(await clients.open(`tcp://127.0.0.1:${A.port}`), T, 'cut', 30);
    expect((await durablesOf(A)).find((d) => d.topic === 'dur.stale')).toMatchObject({
      active: false,
      pending: 30,
    });
    const relink = A.mark();
    proxy!.setMode('pass');
    await waitForLogs(A, isLog('network bridge connected'), 1, relink);
    await waitForLogs(
      A,
      isLog('network bridge: network durable subscription removed', { destination: T }),
      1,
      relink,
    );
    expect((await durablesOf(A)).some((d) => d.topic === 'dur.stale')).toBe(false);
    expect(tally.total).toBe(0);
  });
});
