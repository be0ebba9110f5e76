/**
 * `--locker file` (issue #19, ActiveMQ's shared file system master/slave) with `--db` (mode a): real
 * broker processes take a kernel lock on `<lock dir>/lock` in a temporary directory; the store is
 * the test Postgres, every write fenced by the epoch the new master commits there.
 *
 * (1) SIGKILL of the master under persistent load: another node takes over at once (the kernel
 *     drops the lock), epoch +1 in the store and the lock file, nothing lost or duplicated.
 * (2) SIGSTOP of the master with a lease: a slave on this host fences it (SIGKILL of its pid) and
 *     takes over, nothing lost or duplicated.
 * (3) SIGSTOP without a lease: no takeover (as in ActiveMQ), and the slave says why it waits.
 * (4) Bad lock directories: the node exits non-zero naming the directory and the reason.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type BrokerProcess, CLI_MAIN, startBroker, stopAll, useTestDatabase } from '@keel/testkit';
import { brokerInfo, crashedNodes, queueDepth, sql, startNode } from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import { drain, failoverUrl, SteadyTraffic } from './helpers/traffic';

jest.setTimeout(120_000);

const db = useTestDatabase();
let lockDir: string;

beforeEach(() => {
  lockDir = mkdtempSync(path.join(os.tmpdir(), 'keel-e2e-lock-'));
});

afterEach(() => {
  rmSync(lockDir, { recursive: true, force: true });
});

afterAll(async () => {
  await stopAll();
});

interface LockRecord {
  name: string;
  host: string;
  pid: number;
  epoch: number;
  acquiredAt: string;
}

function lockRecord(): LockRecord {
  return JSON.parse(readFileSync(path.join(lockDir, 'lock.json'), 'utf8')) as LockRecord;
}

async function clusterRow(cluster: string): Promise<{ epoch: number; master: string }> {
  const rows = await sql<{ epoch: string; master: string }>(
    db.url,
    'SELECT epoch::text AS epoch, master FROM keel_clusters WHERE cluster = $1',
    [cluster],
  );
  return { epoch: Number(rows[0]?.epoch ?? 0), master: rows[0]?.master ?? '' };
}

function fileNode(cluster: string, name: string, extra: string[] = []): Promise<BrokerProcess> {
  return startNode({
    db: db.url,
    cluster,
    name,
    args: ['--locker', 'file', '--lock-dir', lockDir, '--lock-acquire-sleep-interval', '200', ...extra],
  });
}

async function startFileCluster(
  cluster: string,
  count: number,
  extra: string[] = [],
): Promise<BrokerProcess[]> {
  const nodes: BrokerProcess[] = [];
  for (let i = 1; i <= count; i++) {
    const node = await fileNode(cluster, `${cluster}-n${i}`, extra);
    nodes.push(node);
    await node.waitForRole(i === 1 ? 'master' : 'slave', 30_000);
  }
  return nodes;
}

async function masters(nodes: BrokerProcess[]): Promise<string[]> {
  const infos = await Promise.all(
    nodes.map((n) => (n.exitStatus || n.isPaused ? null : brokerInfo(n, 2_000))),
  );
  return infos.filter((i) => i?.role === 'master').map((i) => i?.name as string);
}

function summaryLine(what: string, ledger: Ledger, extra: string): void {
  const s = ledger.summary();
  console.log(
    `[e2e file locker ${what}] sent=${s.attempted} receipted=${s.receipted} received=${s.distinctDelivered} lost=${s.lost} duplicated=${s.duplicates} ${extra}`,
  );
}

function expectNothingLost(ledger: Ledger, depth: number): void {
  const s = ledger.summary();
  expect({ lost: s.lost, duplicated: s.duplicates, corrupt: s.corrupt, unknown: s.unknown, depth }).toEqual({
    lost: 0,
    duplicated: 0,
    corrupt: 0,
    unknown: 0,
    depth: 0,
  });
}

test('three nodes, one master; SIGKILL of the master: another takes over at once, epoch +1 in the store and the lock file, nothing lost', async () => {
  const cluster = 'file-kill';
  const queue = 'file.kill';
  const nodes = await startFileCluster(cluster, 3);
  const master = nodes[0] as BrokerProcess;
  const ledger = new Ledger();
  const traffic = await SteadyTraffic.start({
    url: failoverUrl(nodes.map((n) => n.port)),
    destination: `queue://${queue}`,
    ledger,
    tag: 'fk',
  });
  try {
    expect(await masters(nodes)).toEqual([master.name]);
    const before = await clusterRow(cluster);
    expect(lockRecord()).toMatchObject({
      name: master.name,
      host: os.hostname(),
      pid: master.pid,
      epoch: before.epoch,
    });
    const info = (await (await fetch(`http://127.0.0.1:${nodes[1]?.adminPort}/api/broker`)).json()) as {
      lockHolder: string;
      locker: { kind: string; directory: string; holder: LockRecord };
    };
    expect(info.lockHolder).toBe(master.name);
    expect(info.locker).toMatchObject({
      kind: 'file',
      directory: lockDir,
      holder: { name: master.name, pid: master.pid },
    });

    await traffic.waitForReceipts(300, 20_000);
    const marks = nodes.map((n) => n.mark());
    const killedAt = Date.now();
    master.kill('SIGKILL');
    const taker = await Promise.any(
      nodes
        .slice(1)
        .map((n, i) =>
          n
            .waitForLog((e) => e.msg === 'role changed' && e.role === 'master', 30_000, marks[i + 1])
            .then(() => n),
        ),
    );
    const takeoverMs = Date.now() - killedAt;
    await traffic.waitForReceipts(300, 30_000, 'receipts after the takeover');
    await traffic.stopProducers();
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);

    const after = await clusterRow(cluster);
    summaryLine(
      'SIGKILL',
      ledger,
      `takeover=${takeoverMs} ms (acquire interval 200 ms) client pause max=${traffic.maxClientPauseMs} ms epoch ${before.epoch}->${after.epoch}`,
    );
    expect(after).toEqual({ epoch: before.epoch + 1, master: taker.name });
    expect(lockRecord()).toMatchObject({ name: taker.name, pid: taker.pid, epoch: after.epoch });
    expect(await masters(nodes)).toEqual([taker.name]);
    // The takeover history names it, as with the row locker.
    const history = (await (await fetch(`http://127.0.0.1:${taker.adminPort}/api/cluster`)).json()) as {
      master: string;
      takeovers: { node: string; epoch: number }[];
    };
    expect(history.master).toBe(taker.name);
    expect(history.takeovers[0]).toMatchObject({ node: taker.name, epoch: after.epoch });
    expect(takeoverMs).toBeLessThan(5_000);
    expectNothingLost(ledger, depth);
    expect(crashedNodes(nodes.slice(1))).toEqual([]);
  } finally {
    await traffic.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('with a lease, a frozen (SIGSTOPped) master on this host is fenced by SIGKILL and a slave takes over; nothing lost', async () => {
  const cluster = 'file-lease';
  const queue = 'file.lease';
  const lease = ['--lock-keep-alive-period', '300', '--lease-duration', '1500'];
  const nodes = await startFileCluster(cluster, 2, lease);
  const [old, slave] = nodes as [BrokerProcess, BrokerProcess];
  const ledger = new Ledger();
  const traffic = await SteadyTraffic.start({
    url: failoverUrl(nodes.map((n) => n.port)),
    destination: `queue://${queue}`,
    ledger,
    tag: 'fl',
  });
  try {
    await traffic.waitForReceipts(300, 20_000);
    const before = await clusterRow(cluster);
    const mark = slave.mark();
    const frozenAt = Date.now();
    old.pause();
    const fenced = await slave.waitForLog((e) => e.msg === 'fenced the stale master', 30_000, mark);
    await slave.waitForLog((e) => e.msg === 'role changed' && e.role === 'master', 30_000, mark);
    const takeoverMs = Date.now() - frozenAt;
    expect(fenced).toMatchObject({ holder: old.name, pid: old.pid });
    expect(await old.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await traffic.waitForReceipts(300, 30_000, 'receipts from the new master');
    await traffic.stopProducers();
    const depth = await drain(ledger, () => queueDepth(db.url, cluster, queue), 30_000);
    const after = await clusterRow(cluster);
    summaryLine(
      'SIGSTOP+lease',
      ledger,
      `freeze->master=${takeoverMs} ms (lease 1500 ms) client pause max=${traffic.maxClientPauseMs} ms epoch ${before.epoch}->${after.epoch}`,
    );
    expect(after).toEqual({ epoch: before.epoch + 1, master: slave.name });
    expect(lockRecord()).toMatchObject({ name: slave.name, pid: slave.pid, epoch: after.epoch });
    // Not before the lease ran out since the last renewal the slave saw (at most one keep-alive before the freeze).
    expect(takeoverMs).toBeGreaterThanOrEqual(1_500 - 300);
    expectNothingLost(ledger, depth);
  } finally {
    await traffic.close();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('without a lease, a frozen master keeps its kernel lock: no takeover, and the slave says why it waits', async () => {
  const cluster = 'file-nolease';
  const nodes = await startFileCluster(cluster, 2);
  const [master, slave] = nodes as [BrokerProcess, BrokerProcess];
  try {
    const said = await slave.waitForLog((e) => /held by another node; waiting/.test(String(e.msg)), 10_000);
    expect(said).toMatchObject({ holder: master.name, pid: master.pid });
    expect(String(said.msg)).toMatch(/no lease: a frozen holder keeps the lock/);
    const before = await clusterRow(cluster);
    master.pause();
    // 25 attempts of the slave (every 200 ms) while the master is frozen.
    const tookOver = await slave
      .waitForLog((e) => e.msg === 'role changed' && e.role === 'master', 5_000, slave.mark())
      .then(
        () => true,
        () => false,
      );
    expect(tookOver).toBe(false);
    expect(await clusterRow(cluster)).toEqual(before);
    expect(lockRecord()).toMatchObject({ name: master.name, pid: master.pid });
    master.resume();
    expect(await masters(nodes)).toEqual([master.name]);
  } finally {
    if (master.isPaused) master.resume();
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

test('a master whose lock file is removed stops serving at once and says why; a node takes over on a new lock file; keel status shows the holder', async () => {
  const cluster = 'file-removed';
  const nodes = await startFileCluster(cluster, 2);
  const [old, slave] = nodes as [BrokerProcess, BrokerProcess];
  try {
    const status = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [CLI_MAIN, 'status', '--admin', `http://127.0.0.1:${slave.adminPort}`],
        (err, out) => (err ? reject(err) : resolve(out)),
      ),
    );
    expect(status).toMatch(
      new RegExp(
        `^locker +file ${lockDir} \\(lock file names ${old.name} on host ${os.hostname()}, pid ${old.pid}, epoch 1, since `,
        'm',
      ),
    );
    const marks = nodes.map((n) => n.mark());
    unlinkSync(path.join(lockDir, 'lock'));
    const lost = await old.waitForLog((e) => e.msg === 'master lock lost', 10_000, marks[0]);
    // Removed, or already replaced: the slave, trying every 200 ms, may create and lock a new one
    // before this master's next check (every 1000 ms).
    expect(String(lost.reason)).toMatch(
      new RegExp(`^lock file ${path.join(lockDir, 'lock')} was (removed|replaced \\(inode \\d+ → \\d+\\))$`),
    );
    const stopped = await old.waitForLog(
      (e) => e.msg === 'role changed' && e.role !== 'master',
      10_000,
      marks[0],
    );
    expect(logTimeOf(stopped) - logTimeOf(lost)).toBeLessThan(1_000);
    // The next master is whoever takes the new lock file first: usually the slave, but on a busy
    // machine the old master (a slave again, retrying every 200 ms) can win it.
    const [next, taken] = await Promise.race(
      [slave, old].map((n) =>
        n
          .waitForLog(
            (e) => e.msg === 'role changed' && e.role === 'master',
            30_000,
            n === old ? old.logs.indexOf(stopped) + 1 : marks[1],
          )
          .then((e) => [n, e] as const),
      ),
    );
    // Whoever created the lock file anew took over only after the old master had stepped down.
    expect(logTimeOf(taken)).toBeGreaterThan(logTimeOf(stopped));
    expect(await clusterRow(cluster)).toEqual({ epoch: 2, master: next.name });
    expect(lockRecord()).toMatchObject({ name: next.name, epoch: 2 });
    expect(await masters(nodes)).toEqual([next.name]);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
});

function logTimeOf(e: Record<string, unknown>): number {
  return typeof e.time === 'number' ? e.time : Date.parse(String(e.time));
}

describe('a bad lock directory: the node exits non-zero and names the directory and the reason', () => {
  async function refused(directory: string, command?: string[]): Promise<string> {
    const node = await startBroker({
      db: db.url,
      name: 'bad-dir',
      cluster: 'file-bad',
      args: ['--locker', 'file', '--lock-dir', directory],
      command,
    });
    const exit = await node.exited;
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    const fatal = node.logs.find((e) => e.msg === 'node failed to start') as {
      err?: { message?: string; code?: string };
    };
    expect(fatal?.err?.code).toBe('LOCK_DIRECTORY_INVALID');
    return fatal?.err?.message ?? '';
  }

  test('missing', async () => {
    const missing = path.join(lockDir, 'missing');
    expect(await refused(missing)).toBe(`lock directory ${missing} does not exist`);
  });

  test('not a directory', async () => {
    const file = path.join(lockDir, 'file');
    writeFileSync(file, '');
    expect(await refused(file)).toBe(`lock directory ${file} is not a directory`);
  });

  test('not writable', async () => {
    // root writes anywhere: run the broker as an unprivileged user then (the directory is root's, 0755).
    const asRoot = process.getuid?.() === 0;
    const dir = mkdtempSync(path.join(lockDir, 'ro-'));
    chmodSync(lockDir, 0o755);
    chmodSync(dir, asRoot ? 0o755 : 0o555);
    const command = asRoot ? ['runuser', '-u', 'nobody', '--', process.execPath, CLI_MAIN] : undefined;
    expect(await refused(dir, command)).toMatch(
      new RegExp(`^lock directory ${dir} is not writable \\(EACCES creating ${dir}/lock\\)$`),
    );
  });
});
