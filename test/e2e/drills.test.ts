/**
 * Failover drills on three real nodes under steady persistent traffic (DESIGN.md, "Master/slave,
 * precisely"): the master is (a) killed, (b) frozen past its lease and woken up, (c) cut from its
 * Postgres sessions, (d) partitioned from Postgres and healed, (e) Postgres itself restarts, and
 * (f) the master is stopped gracefully (SIGTERM) and restarted.
 * Each drill: no receipted message lost, no duplicate handed to the application; (b) and (d) also
 * check the fencing: the old master never writes again, never two masters at once.
 */
import {
  type BrokerProcess,
  FaultProxy,
  startPostgresServer,
  stopAll,
  useTestDatabase,
  withDatabase,
} from '@keel/testkit';
import {
  auditMessageWrites,
  brokerInfo,
  crashedNodes,
  leftovers,
  logTime,
  masterOverlaps,
  portRefuses,
  queueDepth,
  restartPostgres,
  sql,
  staleEpochWrites,
  startCluster,
  startNode,
  waitForNewMaster,
} from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import { drain, failoverUrl, SteadyTraffic } from './helpers/traffic';

jest.setTimeout(120_000);

const db = useTestDatabase();

afterAll(async () => {
  await stopAll();
});

/** Samples GET /api/broker of every node until stop(); records any moment with two masters. */
class MasterSampler {
  samples = 0;
  readonly doubleMasters: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(nodes: BrokerProcess[], maxRunMs = 60_000) {
    const deadline = Date.now() + maxRunMs;
    this.loop = (async () => {
      while (this.running && Date.now() < deadline) {
        const infos = await Promise.all(
          nodes.map((n) => (n.isPaused || n.exitStatus ? null : brokerInfo(n, 500))),
        );
        this.samples++;
        const masters = infos.filter((i) => i?.role === 'master').map((i) => `${i?.name}@${i?.epoch}`);
        if (masters.length > 1) this.doubleMasters.push(`${new Date().toISOString()} ${masters.join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

interface DrillReport {
  name: string;
  pauseMs: number;
  clientPauseMs: number;
  extra?: string;
}

function report(ledger: Ledger, traffic: SteadyTraffic, r: DrillReport): void {
  const s = ledger.summary();
  console.log(
    `[e2e drill ${r.name}] receipted=${s.receipted} failed=${s.failed} retried=${s.retried} delivered=${s.delivered} ` +
      `lost=${s.lost} duplicates=${s.duplicates} retryDuplicates=${s.retryDuplicates} service pause (longest gap between receipts)=${r.pauseMs} ms ` +
      `client pause max=${r.clientPauseMs} ms errors=${JSON.stringify(traffic.errorCounts())}${r.extra ? ` ${r.extra}` : ''}`,
  );
}

async function expectNothingLost(
  ledger: Ledger,
  depth: number,
  where: { url: string; cluster: string; queue: string },
): Promise<void> {
  const s = ledger.summary();
  if (depth > 0) {
    const rows = await leftovers(where.url, where.cluster, where.queue, (b) => ledger.describe(b));
    console.log(`[e2e drill ${where.cluster}] ${depth} rows left after the drain:\n${rows.join('\n')}`);
  }
  expect(s.lost).toBe(0);
  expect(s.duplicates).toBe(0);
  expect(s.corrupt).toBe(0);
  expect(s.unknown).toBe(0);
  expect(depth).toBe(0);
}

async function epochOf(url: string, cluster: string): Promise<{ epoch: number; master: string }> {
  const rows = await sql<{ epoch: string; master: string }>(
    url,
    'SELECT epoch::text AS epoch, master FROM keel_clusters WHERE cluster = $1',
    [cluster],
  );
  return { epoch: Number(rows[0]?.epoch ?? 0), master: rows[0]?.master ?? '' };
}

/**
 * Ids of stored messages of this cluster written under `epoch`: ids are idBlock * 2^32 + counter,
 * with the id block that epoch's takeover took (keel_takeovers.id_block).
 */
async function idsOfEpoch(url: string, cluster: string, epoch: number): Promise<Set<string>> {
  const rows = await sql<{ id: string }>(
    url,
    `SELECT m.id::text AS id FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
      WHERE d.cluster = $1
        AND (m.id >> 32) = (SELECT id_block FROM keel_takeovers WHERE cluster = $1 AND epoch = $2)`,
    [cluster, epoch],
  );
  return new Set(rows.map((r) => r.id));
}

test('(a) master SIGKILL: a slave takes over, no receipted message lost', async () => {
  const cluster = 'drill-a';
  const queue = 'drill.a';
  const nodes = await startCluster(db.url, cluster, 3);
  const master = nodes[0]!;
  const ledger = new Ledger();
  const traffic = await SteadyTraffic.start({
    url: failoverUrl(nodes.map((n) => n.port)),
    destination: `queue://${queue}`,
    ledger,
    tag: 'a',
  });
  try {
    await traffic.waitForReceipts(300, 20_000);
    const newMaster = waitForNewMaster(nodes, master, 30_000);
    const killedAt = Date.now();
    master.kill('SIGKILL');
    const { node: taker } = await newMaster;
    await traffic.waitForReceipts(300, 30_000, 'receipts after the takeover');
    await traffic.stopProducers();
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);
    report(ledger, traffic, {
      name: '(a) SIGKILL',
      pauseMs: traffic.longestReceiptGapMs(killedAt),
      clientPauseMs: traffic.maxClientPauseMs,
      extra: `new master=${taker.name}`,
    });
    await expectNothingLost(ledger, depth, { url: db.url, cluster, queue });
    expect(crashedNodes(nodes)).toEqual([]);
    expect(await epochOf(db.url, cluster)).toMatchObject({ master: taker.name });
  } finally {
    for (const c of crashedNodes(nodes)) console.log(`[e2e drill] ${c}`);
    await traffic.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('(b) master SIGSTOP past the lease: a slave serves; after SIGCONT the old master never writes again', async () => {
  const cluster = 'drill-b';
  const queue = 'drill.b';
  const nodes = await startCluster(db.url, cluster, 3);
  const old = nodes[0]!;
  const ledger = new Ledger();
  const traffic = await SteadyTraffic.start({
    url: failoverUrl(nodes.map((n) => n.port)),
    destination: `queue://${queue}`,
    ledger,
    tag: 'b',
  });
  try {
    await traffic.waitForReceipts(300, 20_000);
    const oldEpoch = (await epochOf(db.url, cluster)).epoch;
    const newMaster = waitForNewMaster(nodes, old, 30_000);
    const frozenAt = Date.now();
    old.pause();
    const { node: taker, entry } = await newMaster;
    const takeoverMs = logTime(entry) - frozenAt;
    // The takeover is committed: from here on, no row of the old epoch may appear.
    const cluster1 = await epochOf(db.url, cluster);
    expect(cluster1.master).toBe(taker.name);
    expect(cluster1.epoch).toBeGreaterThan(oldEpoch);
    const oldIdsAtTakeover = await idsOfEpoch(db.url, cluster, oldEpoch);
    const takeoversAtTakeover = await sql<{ n: number }>(
      db.url,
      'SELECT count(*)::int AS n FROM keel_takeovers WHERE cluster = $1',
      [cluster],
    );
    await traffic.waitForReceipts(300, 30_000, 'receipts from the new master');
    const servedAfterMs = traffic.longestReceiptGapMs(frozenAt);

    // Wake the old master: it must find itself fenced and go back to waiting.
    const mark = old.mark();
    old.resume();
    await old.waitForLog((e) => e.msg === 'role changed' && e.role === 'slave', 20_000, mark);
    await traffic.waitForReceipts(200, 30_000, 'receipts after the old master woke up');
    await traffic.stopProducers();

    const after = await epochOf(db.url, cluster);
    const oldIdsNow = await idsOfEpoch(db.url, cluster, oldEpoch);
    const newOldEpochRows = [...oldIdsNow].filter((id) => !oldIdsAtTakeover.has(id));
    const takeoversByOld = await sql<{ n: number }>(
      db.url,
      'SELECT count(*)::int AS n FROM keel_takeovers WHERE cluster = $1 AND (node = $2 AND epoch > $3)',
      [cluster, old.name, oldEpoch],
    );
    const takeoversNow = await sql<{ n: number }>(
      db.url,
      'SELECT count(*)::int AS n FROM keel_takeovers WHERE cluster = $1',
      [cluster],
    );
    const info = await brokerInfo(old, 2_000);
    const refuses = await portRefuses(old.port);
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);
    report(ledger, traffic, {
      name: '(b) SIGSTOP',
      pauseMs: servedAfterMs,
      clientPauseMs: traffic.maxClientPauseMs,
      extra:
        `freeze->new master log=${takeoverMs} ms new master=${taker.name} epoch ${oldEpoch}->${after.epoch} ` +
        `old master after SIGCONT: role=${info?.role} port refuses=${refuses} rows of old epoch written after takeover=${newOldEpochRows.length}`,
    });
    expect(after).toEqual(cluster1);
    expect(newOldEpochRows).toEqual([]);
    expect(takeoversByOld[0]?.n).toBe(0);
    expect(takeoversNow[0]?.n).toBe(takeoversAtTakeover[0]?.n);
    expect(info).not.toBeNull();
    expect(info?.role).not.toBe('master');
    expect(refuses).toBe(true);
    await expectNothingLost(ledger, depth, { url: db.url, cluster, queue });
    expect(crashedNodes(nodes)).toEqual([]);
  } finally {
    for (const c of crashedNodes(nodes)) console.log(`[e2e drill] ${c}`);
    if (old.isPaused) old.resume();
    await traffic.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test("(c) the master's Postgres sessions terminated: takeover or recovery, nothing lost", async () => {
  const cluster = 'drill-c';
  const queue = 'drill.c';
  const nodes = await startCluster(db.url, cluster, 3);
  await auditMessageWrites(db.url);
  const master = nodes[0]!;
  const ledger = new Ledger();
  const traffic = await SteadyTraffic.start({
    url: failoverUrl(nodes.map((n) => n.port)),
    destination: `queue://${queue}`,
    ledger,
    retryRetryable: true,
    tag: 'c',
  });
  try {
    await traffic.waitForReceipts(300, 20_000);
    const marks = nodes.map((n) => n.mark());
    // Every backend of the master, in both databases (store, admin pool, lock session).
    const terminated = await sql<{ application_name: string; ok: boolean }>(
      db.url,
      `SELECT application_name, pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE application_name LIKE '%' || $1 AND pid <> pg_backend_pid()`,
      [master.name],
    );
    const cutAt = Date.now();
    expect(terminated.length).toBeGreaterThanOrEqual(2);
    expect(terminated.some((t) => t.application_name.startsWith('keel-lock:'))).toBe(true);
    // Whoever ends up master (the same node after recovery, or another), it announces it anew.
    const served = await Promise.any(
      nodes.map((n, i) =>
        n.waitForLog((e) => e.msg === 'role changed' && e.role === 'master', 30_000, marks[i]).then(() => n),
      ),
    );
    await traffic.waitForReceipts(300, 30_000, 'receipts after the sessions were terminated');
    await traffic.stopProducers();
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);
    report(ledger, traffic, {
      name: '(c) pg_terminate_backend',
      pauseMs: traffic.longestReceiptGapMs(cutAt),
      clientPauseMs: traffic.maxClientPauseMs,
      extra:
        `terminated=${terminated.map((t) => t.application_name).join(',')} master after=${served.name} ` +
        `role log overlaps (not asserted: the old master learns of its loss a keep-alive later)=${JSON.stringify(masterOverlaps(nodes))}`,
    });
    await expectNothingLost(ledger, depth, { url: db.url, cluster, queue });
    expect(crashedNodes(nodes)).toEqual([]);
    // What matters (issue #17.7): no message written by a node after another took the epoch.
    expect(await staleEpochWrites(db.url, cluster)).toEqual([]);
  } finally {
    for (const c of crashedNodes(nodes)) console.log(`[e2e drill] ${c}`);
    await traffic.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('(d) the master cut off from Postgres (fault proxy), then healed: another node takes over, never two masters', async () => {
  const cluster = 'drill-d';
  const queue = 'drill.d';
  const pgUrl = new URL(db.url);
  const proxy = await FaultProxy.start({
    targetHost: pgUrl.hostname,
    targetPort: Number(pgUrl.port || 5432),
  });
  const nodes: BrokerProcess[] = [];
  const ledger = new Ledger();
  let traffic: SteadyTraffic | undefined;
  let sampler: MasterSampler | undefined;
  try {
    // The first node reaches Postgres only through the proxy (its lock database URL derives from
    // --db, so the lock session goes through it too); the two others directly.
    const cut = await startNode({ db: proxy.url(db.url), cluster, name: `${cluster}-n1` });
    nodes.push(cut);
    await cut.waitForRole('master');
    for (const i of [2, 3]) {
      const n = await startNode({ db: db.url, cluster, name: `${cluster}-n${i}` });
      nodes.push(n);
      await n.waitForRole('slave');
    }
    await auditMessageWrites(db.url);
    traffic = await SteadyTraffic.start({
      url: failoverUrl(nodes.map((n) => n.port)),
      destination: `queue://${queue}`,
      ledger,
      retryRetryable: true,
      tag: 'd',
    });
    await traffic.waitForReceipts(300, 20_000);
    sampler = new MasterSampler(nodes);
    const newMaster = waitForNewMaster(nodes, cut, 30_000);
    const cutMark = cut.mark();
    const cutAt = Date.now();
    proxy.setMode('pause');
    const { node: taker, entry } = await newMaster;
    const takeoverMs = logTime(entry) - cutAt;
    // While still cut off, the old master has stopped serving on its own.
    await cut.waitForLog((e) => e.msg === 'role changed' && e.role !== 'master', 20_000, cutMark);
    const fencedWhileCut = proxy.mode === 'pause';
    await traffic.waitForReceipts(300, 30_000, 'receipts from the new master');
    const pauseMs = traffic.longestReceiptGapMs(cutAt);

    const healMark = cut.mark();
    proxy.setMode('pass');
    await cut.waitForLog((e) => e.msg === 'role changed' && e.role === 'slave', 30_000, cutMark);
    // After healing it keeps waiting as a slave (it must not grab the lock back).
    await traffic.waitForReceipts(200, 30_000, 'receipts after healing');
    await traffic.stopProducers();
    await sampler.stop();
    const info = await brokerInfo(cut, 2_000);
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);
    const overlaps = masterOverlaps(nodes);
    report(ledger, traffic, {
      name: '(d) partition',
      pauseMs,
      clientPauseMs: traffic.maxClientPauseMs,
      extra:
        `cut->new master log=${takeoverMs} ms new master=${taker.name} cut node after healing=${info?.role} ` +
        `api samples=${sampler.samples} double-master samples=${sampler.doubleMasters.length} log overlaps=${JSON.stringify(overlaps)} ` +
        `role lines after heal=${cut.logs.slice(healMark).filter((e) => e.msg === 'role changed').length}`,
    });
    expect(fencedWhileCut).toBe(true);
    expect(info?.role).toBe('slave');
    expect((await epochOf(db.url, cluster)).master).toBe(taker.name);
    // Two nodes may both *say* master for a moment (the cut one learns of its loss a keep-alive
    // later, later still on a busy machine: reported above, not asserted); what must never happen
    // is a write of the old master after the takeover (issue #17.7).
    expect(await staleEpochWrites(db.url, cluster)).toEqual([]);
    await expectNothingLost(ledger, depth, { url: db.url, cluster, queue });
    expect(crashedNodes(nodes)).toEqual([]);
  } finally {
    for (const c of crashedNodes(nodes)) console.log(`[e2e drill] ${c}`);
    await sampler?.stop();
    await traffic?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await proxy.close();
  }
});

test('(e) Postgres restarted under load: service resumes, nothing receipted lost', async () => {
  // A private server: the shared one serves other test files in parallel and must never restart.
  const server = await startPostgresServer({ externalUrl: null, skip: ['testcontainers', 'embedded'] });
  const cluster = 'drill-e';
  const queue = 'drill.e';
  const url = withDatabase(server.adminUrl, 'keel_drill_e');
  await sql(server.adminUrl, 'CREATE DATABASE keel_drill_e');
  const nodes: BrokerProcess[] = [];
  const ledger = new Ledger();
  let traffic: SteadyTraffic | undefined;
  try {
    nodes.push(...(await startCluster(url, cluster, 3)));
    await auditMessageWrites(url);
    traffic = await SteadyTraffic.start({
      url: failoverUrl(nodes.map((n) => n.port)),
      destination: `queue://${queue}`,
      ledger,
      retryRetryable: true,
      tag: 'e',
    });
    await traffic.waitForReceipts(300, 20_000);
    const marks = nodes.map((n) => n.mark());
    const restartAt = Date.now();
    await restartPostgres(server);
    const restartedMs = Date.now() - restartAt;
    const served = await Promise.any(
      nodes.map((n, i) =>
        n.waitForLog((e) => e.msg === 'role changed' && e.role === 'master', 30_000, marks[i]).then(() => n),
      ),
    );
    await traffic.waitForReceipts(300, 30_000, 'receipts after the restart');
    await traffic.stopProducers();
    const depth = await drain(ledger, () => queueDepth(url, cluster, queue), 30_000);
    report(ledger, traffic, {
      name: '(e) Postgres restart',
      pauseMs: traffic.longestReceiptGapMs(restartAt),
      clientPauseMs: traffic.maxClientPauseMs,
      extra:
        `pg_ctl restart took ${restartedMs} ms, master after=${served.name} ` +
        `role log overlaps (not asserted)=${JSON.stringify(masterOverlaps(nodes))}`,
    });
    await expectNothingLost(ledger, depth, { url, cluster, queue });
    expect(crashedNodes(nodes)).toEqual([]);
    expect(await staleEpochWrites(url, cluster)).toEqual([]);
  } finally {
    for (const c of crashedNodes(nodes)) console.log(`[e2e drill] ${c}`);
    await traffic?.close();
    await Promise.all(nodes.map((n) => n.stop()));
    await server.stop();
  }
});

test('(f) master stopped gracefully (SIGTERM): a slave takes over, nothing receipted lost; restarted, the node rejoins as a slave', async () => {
  const cluster = 'drill-f';
  const queue = 'drill.f';
  const nodes = await startCluster(db.url, cluster, 2);
  const master = nodes[0]!;
  const ledger = new Ledger();
  const traffic = await SteadyTraffic.start({
    url: failoverUrl(nodes.map((n) => n.port)),
    destination: `queue://${queue}`,
    ledger,
    tag: 'f',
  });
  try {
    await traffic.waitForReceipts(300, 20_000);
    const newMaster = waitForNewMaster(nodes, master, 30_000);
    const stoppedAt = Date.now();
    const exit = await master.stop();
    const { node: taker } = await newMaster;
    await traffic.waitForReceipts(300, 30_000, 'receipts after the hand-over');
    const again = await startNode({ db: db.url, cluster, name: master.name });
    nodes.push(again);
    await again.waitForRole('slave', 30_000);
    await traffic.stopProducers();
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);
    report(ledger, traffic, {
      name: '(f) SIGTERM',
      pauseMs: traffic.longestReceiptGapMs(stoppedAt),
      clientPauseMs: traffic.maxClientPauseMs,
      extra: `exit=${JSON.stringify(exit)} new master=${taker.name}`,
    });
    expect(exit.signal === null && exit.code === 0).toBe(true);
    await expectNothingLost(ledger, depth, { url: db.url, cluster, queue });
    expect(crashedNodes(nodes)).toEqual([]);
    expect(await epochOf(db.url, cluster)).toMatchObject({ master: taker.name });
  } finally {
    for (const c of crashedNodes(nodes)) console.log(`[e2e drill] ${c}`);
    await traffic.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});
