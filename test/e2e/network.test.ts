/**
 * Networks of brokers with real broker processes, each its own cluster on its own database:
 * demand-forwarding of queues (store-and-forward), topic fan-out over a full mesh, loop prevention
 * by brokerPath, and a bridge's broker SIGKILLed mid-flight. Every test counts messages sent,
 * received, lost and duplicated.
 */
import { type Connection, type Consumer, connect } from '@keel/client';
import {
  type BrokerProcess,
  createTestDatabase,
  freePorts,
  type LogEntry,
  startBroker,
  stopAll,
  type TestDatabase,
} from '@keel/testkit';
import {
  type BridgeInfo,
  bridgesOf,
  isLog,
  pollUntil,
  Tally,
  waitForLogs as waitForProcLogs,
} from './helpers/network';

jest.setTimeout(90_000);

const ENV: Record<string, string> = {
  KEEL_LOCK_LEASE_MS: '1500',
  KEEL_LOCK_KEEP_ALIVE_MS: '300',
  KEEL_LOCK_WAITING_POLL_MS: '300',
  KEEL_HEARTBEAT_MS: '500',
  KEEL_LOG_LEVEL: 'info',
};
/** Quick reconnects so a restarted peer is found in well under a second. */
const OPTS = 'initialReconnectDelay=100&maxReconnectDelay=500&prefetchSize=20';

interface Node {
  name: string;
  port: number;
  db: TestDatabase;
  peers: string[];
  proc: BrokerProcess;
}

const dbs: TestDatabase[] = [];
const conns: Connection[] = [];

async function startNode(
  name: string,
  port: number,
  peerPorts: number[],
  db?: TestDatabase,
  env: Record<string, string> = {},
): Promise<Node> {
  const database = db ?? (await createTestDatabase());
  if (!db) dbs.push(database);
  const args = peerPorts.length
    ? ['--network-connector', `static:(${peerPorts.map((p) => `tcp://127.0.0.1:${p}`).join(',')})?${OPTS}`]
    : [];
  const proc = await startBroker({
    db: database.url,
    name,
    cluster: name,
    port,
    args,
    env: { ...ENV, ...env },
  });
  await proc.waitForRole('master', 30_000);
  return { name, port, db: database, peers: [], proc };
}

async function client(node: Node): Promise<Connection> {
  const c = await connect(`tcp://127.0.0.1:${node.port}`, { heartbeatMs: 1000 });
  c.on('error', () => {});
  conns.push(c);
  return c;
}

/** Resolves once `node` logged `count` matching lines from `from` on. */
async function waitForLogs(
  node: Node,
  pred: (e: LogEntry) => boolean,
  count: number,
  from = 0,
): Promise<void> {
  await waitForProcLogs(node.proc, pred, count, from);
}

async function consume(node: Node, destination: string, tally: Tally, prefetch = 100): Promise<Consumer> {
  const c = await client(node);
  const s = await c.createSession();
  const consumer = await s.createConsumer(destination, { prefetch });
  consumer.onMessage((m) => tally.add(node.name, m));
  return consumer;
}

async function produce(
  node: Node,
  destination: string,
  prefix: string,
  count: number,
  persistent = true,
): Promise<string[]> {
  const c = await client(node);
  const s = await c.createSession();
  const p = s.createProducer(destination, { persistent });
  const keys: string[] = [];
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const k = `${prefix}-${i}`;
    keys.push(k);
    window.push(p.send(`body ${k}`, { properties: { k } }));
    if (window.length >= 50) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  return keys;
}

afterAll(async () => {
  await Promise.all(conns.map((c) => c.close().catch(() => {})));
  await stopAll();
  await Promise.all(dbs.map((d) => d.drop().catch(() => {})));
});

describe('ring of three (X→Y, Y→Z, Z→X)', () => {
  let X: Node;
  let Y: Node;
  let Z: Node;

  beforeAll(async () => {
    const [px, py, pz] = (await freePorts(3)) as [number, number, number];
    [X, Y, Z] = await Promise.all([
      startNode('netX', px, [py]),
      // debug: Y logs each resend its duplicate detection drops (the SIGKILL test counts them).
      startNode('netY', py, [pz], undefined, { KEEL_LOG_LEVEL: 'debug' }),
      startNode('netZ', pz, [px]),
    ]);
    await Promise.all([X, Y, Z].map((n) => waitForLogs(n, isLog('network bridge connected'), 1)));
  });

  test('queue messages go where the consumers are; without demand they stay where sent', async () => {
    // No consumer anywhere: sent on X, they stay on X.
    const idle = await produce(X, 'queue://net.idle', 'idle', 50);
    const tally = new Tally();
    const mark = X.proc.mark();
    const onY = await consume(Y, 'queue://net.demand', tally);
    await waitForLogs(
      X,
      isLog('network bridge: forwarding on demand', { destination: 'queue://net.demand' }),
      1,
      mark,
    );
    const sent = await produce(X, 'queue://net.demand', 'd', 300);
    await tally.until(sent.length);
    expect({
      sent: sent.length,
      received: tally.total,
      lost: tally.lost(sent).length,
      duplicated: tally.duplicated,
    }).toEqual({
      sent: 300,
      received: 300,
      lost: 0,
      duplicated: 0,
    });
    expect(tally.byBroker.get('netY')).toBe(300);
    // The admin API lists X's bridge to Y with what it forwarded. The counter moves when Y confirms
    // a message, which (concurrent store and dispatch) may come just after Y's consumer has it.
    let bridges: BridgeInfo[] = [];
    await pollUntil('X counts 300 forwarded', async () => {
      bridges = await bridgesOf(X.proc);
      return bridges.length === 1 && bridges[0]!.forwarded >= 300;
    });
    expect(bridges).toHaveLength(1);
    expect(bridges[0]!.forwarded).toBeGreaterThanOrEqual(300);

    // Demand gone: X stops forwarding; what is sent next stays on X.
    const gone = X.proc.mark();
    await onY.close();
    await waitForLogs(
      X,
      isLog('network bridge: demand gone', { destination: 'queue://net.demand' }),
      1,
      gone,
    );
    const later = await produce(X, 'queue://net.demand', 'later', 20);
    const laterTally = new Tally();
    await consume(X, 'queue://net.demand', laterTally);
    await laterTally.until(later.length);
    expect({
      received: laterTally.total,
      lost: laterTally.lost(later).length,
      duplicated: laterTally.duplicated,
    }).toEqual({
      received: 20,
      lost: 0,
      duplicated: 0,
    });

    const idleTally = new Tally();
    await consume(X, 'queue://net.idle', idleTally);
    await idleTally.until(idle.length);
    expect({
      received: idleTally.total,
      lost: idleTally.lost(idle).length,
      duplicated: idleTally.duplicated,
    }).toEqual({
      received: 50,
      lost: 0,
      duplicated: 0,
    });
  });

  test('consumers and producers on all three: each message delivered once (brokerPath stops loops)', async () => {
    const tally = new Tally();
    const marks = [X, Y, Z].map((n) => n.proc.mark());
    await Promise.all([X, Y, Z].map((n) => consume(n, 'queue://net.ring', tally, 20)));
    // Each broker forwards to its one downstream peer, which has a consumer now.
    await Promise.all(
      [X, Y, Z].map((n, i) =>
        waitForLogs(
          n,
          isLog('network bridge: forwarding on demand', { destination: 'queue://net.ring' }),
          1,
          marks[i],
        ),
      ),
    );
    const sent = (
      await Promise.all([X, Y, Z].map((n) => produce(n, 'queue://net.ring', `r${n.name}`, 200)))
    ).flat();
    await tally.until(sent.length);
    expect({
      sent: sent.length,
      received: tally.total,
      lost: tally.lost(sent).length,
      duplicated: tally.duplicated,
    }).toEqual({
      sent: 600,
      received: 600,
      lost: 0,
      duplicated: 0,
    });
  });

  test('the forwarding broker SIGKILLed mid-flight: restarted, it resends; nothing lost, nothing doubled', async () => {
    // 1,000 persistent messages wait on X (no demand yet).
    const sent = await produce(X, 'queue://net.crash', 'c', 1000);
    const tally = new Tally();
    let killed = false;
    const c = await client(Y);
    const s = await c.createSession();
    const consumer = await s.createConsumer('queue://net.crash', { prefetch: 50 });
    consumer.onMessage((m) => {
      tally.add('netY', m);
      if (!killed && tally.total >= 200) {
        killed = true;
        X.proc.kill('SIGKILL');
      }
    });
    await tally.until(200);
    const exit = await X.proc.exited;
    expect(exit.signal).toBe('SIGKILL');
    const before = tally.total;
    X = await startNode('netX', X.port, [Y.port], X.db);
    await tally.until(sent.length, 40_000);
    expect(before).toBeLessThan(sent.length);
    // The kill caught the bridge mid-flight: X resent messages Y had stored but X had not yet
    // acknowledged, and Y's duplicate detection of network forwards dropped them (producerId
    // net:netX:<id>, which X's restart kept: the ids of its stored messages).
    const resendsDropped = Y.proc.logs.filter((e) => e.msg === 'duplicate network forward dropped').length;
    expect(resendsDropped).toBeGreaterThan(0);
    expect({
      sent: sent.length,
      received: tally.total,
      lost: tally.lost(sent).length,
      duplicated: tally.duplicated,
    }).toEqual({
      sent: 1000,
      received: 1000,
      lost: 0,
      duplicated: 0,
    });
  });
});

describe('full mesh of three', () => {
  let A: Node;
  let B: Node;
  let C: Node;

  beforeAll(async () => {
    const [pa, pb, pc] = (await freePorts(3)) as [number, number, number];
    [A, B, C] = await Promise.all([
      startNode('meshA', pa, [pb, pc]),
      startNode('meshB', pb, [pa, pc]),
      startNode('meshC', pc, [pa, pb]),
    ]);
    await Promise.all([A, B, C].map((n) => waitForLogs(n, isLog('network bridge connected'), 2)));
  });

  test('topic fan-out: every subscriber on every broker gets each message exactly once', async () => {
    const subs = [A, B, C].map(() => new Tally());
    const marks = [A, B, C].map((n) => n.proc.mark());
    await Promise.all([A, B, C].map((n, i) => consume(n, 'topic://net.news', subs[i] as Tally)));
    // Each broker subscribes once per peer (conduit) once both peers advertised their subscriber.
    await Promise.all(
      [A, B, C].map((n, i) =>
        waitForLogs(
          n,
          isLog('network bridge: forwarding on demand', { destination: 'topic://net.news' }),
          2,
          marks[i],
        ),
      ),
    );
    const sent = [
      ...(await produce(A, 'topic://net.news', 'tA', 200)),
      ...(await produce(B, 'topic://net.news', 'tB', 100, false)),
    ];
    await Promise.all(subs.map((t) => t.until(sent.length)));
    for (const t of subs) {
      expect({ received: t.total, lost: t.lost(sent).length, duplicated: t.duplicated }).toEqual({
        received: 300,
        lost: 0,
        duplicated: 0,
      });
    }
  });

  test('consumers on A and B, none on C: all arrive on A and B, none goes to C', async () => {
    const tally = new Tally();
    const mark = A.proc.mark();
    await Promise.all([A, B].map((n) => consume(n, 'queue://net.ab', tally, 10)));
    await waitForLogs(
      A,
      isLog('network bridge: forwarding on demand', { destination: 'queue://net.ab' }),
      1,
      mark,
    );
    const sent = await produce(A, 'queue://net.ab', 'ab', 400);
    await tally.until(sent.length);
    expect({
      sent: sent.length,
      received: tally.total,
      lost: tally.lost(sent).length,
      duplicated: tally.duplicated,
    }).toEqual({
      sent: 400,
      received: 400,
      lost: 0,
      duplicated: 0,
    });
    expect(tally.byBroker.get('meshB') ?? 0).toBeGreaterThan(0);
    expect(tally.byBroker.get('meshC')).toBeUndefined();
    // C never had demand for it, so no bridge consumes it on A for C.
    expect(
      A.proc.logs.some(
        (e) =>
          e.msg === 'network bridge: forwarding on demand' &&
          e.destination === 'queue://net.ab' &&
          e.remote === 'meshC',
      ),
    ).toBe(false);
  });
});
