/**
 * Shared-storage master/slave, mode b (issue #19.2b): real broker processes with `--locker file
 * --lock-dir DIR/lock --store-dir DIR/store` and no `--db`. Only the lock holder runs Postgres on
 * the shared data directory; a master whose lock file is removed stops its Postgres before anything
 * else and says why; the next master runs crash recovery and has every receipted message; a node
 * with another lock directory is refused. (The drills under load: shared-store-drills.test.ts.)
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connect } from '@keel/client';
import { type BrokerProcess, type LogEntry, startBroker, stopAll } from '@keel/testkit';

jest.setTimeout(120_000);

let dir: string;
let lockDir: string;
let storeDir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'keel-shared-e2e-'));
  chmodSync(dir, 0o755); // Postgres runs as user postgres when we are root
  lockDir = path.join(dir, 'lock');
  storeDir = path.join(dir, 'store');
  mkdirSync(lockDir, { mode: 0o755 });
});

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

function sharedNode(name: string, lock = lockDir): Promise<BrokerProcess> {
  return startBroker({
    db: '',
    name,
    cluster: 'shared-e2e',
    args: [
      '--locker',
      'file',
      '--lock-dir',
      lock,
      '--store-dir',
      storeDir,
      '--lock-acquire-sleep-interval',
      '200',
      '--lock-keep-alive-period',
      '200',
    ],
  });
}

function postmasterPid(): number | null {
  try {
    return Number(readFileSync(path.join(storeDir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const indexOf = (node: BrokerProcess, test: (e: LogEntry) => boolean) => node.logs.findIndex(test);

describe('shared-storage master/slave (mode b)', () => {
  it('only the holder runs Postgres; a removed lock file stops it first (immediate), and the next master recovers every receipted message', async () => {
    const a = await sharedNode('a');
    await a.waitForRole('master', 90_000);
    const b = await sharedNode('b');
    await b.waitForRole('slave', 60_000);
    const firstPostmaster = postmasterPid() as number;
    expect(firstPostmaster).toBeGreaterThan(0);
    expect(alive(firstPostmaster)).toBe(true);
    // The slave started no Postgres; its admin API answers from the lock file (keel status reads these).
    expect(indexOf(b, (e) => e.msg === 'shared-store Postgres ready (crash recovery done)')).toBe(-1);
    const cluster = await fetch(`http://127.0.0.1:${b.adminPort}/api/cluster`);
    expect(cluster.status).toBe(200);
    const view = (await cluster.json()) as { nodes: { name: string; role: string }[] };
    expect(view.nodes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'a', role: 'master' }),
        expect.objectContaining({ name: 'b', role: 'slave' }),
      ]),
    );

    const queue = `queue://shared-${Date.now()}`;
    const producerConn = await connect(`tcp://127.0.0.1:${a.port}`);
    const session = await producerConn.createSession();
    const producer = session.createProducer(queue, { persistent: true });
    const sent = 300;
    for (let i = 0; i < sent; i++) await producer.send(`m${i}`);
    await producerConn.close();

    // Someone removes the lock file: the master loses the lock and must stop Postgres first.
    const mark = a.mark();
    rmSync(path.join(lockDir, 'lock'));
    const stopped = await a.waitForLog(
      (e) => typeof e.msg === 'string' && e.msg.startsWith('stopped the shared-store Postgres'),
      30_000,
      mark,
    );
    expect(String(stopped.reason)).toMatch(/lost the master lock: lock file .*lock was (removed|replaced)/);
    const stepDown = await a.waitForLog((e) => e.msg === 'stepped down', 30_000, mark);
    const roleChange = await a.waitForLog(
      (e) => e.msg === 'role changed' && e.role !== 'master',
      30_000,
      mark,
    );
    // Postgres went before the node stepped down or changed its role.
    expect(a.logs.indexOf(stopped)).toBeLessThan(a.logs.indexOf(stepDown));
    expect(a.logs.indexOf(stopped)).toBeLessThan(a.logs.indexOf(roleChange));

    // The next master is whoever takes the new lock file first: usually b, but on a busy machine a
    // (a slave again, retrying every 200 ms) can win it. Either way it runs crash recovery.
    const next = await Promise.race([
      b.waitForRole('master', 90_000).then(() => b),
      a
        .waitForLog(
          (e) => e.msg === 'role changed' && e.role === 'master',
          90_000,
          a.logs.indexOf(roleChange),
        )
        .then(() => a),
    ]);
    const other = next === a ? b : a;
    expect(alive(firstPostmaster)).toBe(false);
    const second = postmasterPid() as number;
    expect(second).not.toBe(firstPostmaster);
    expect(alive(second)).toBe(true);

    const consumerConn = await connect(`tcp://127.0.0.1:${next.port}`);
    const cs = await consumerConn.createSession({ ackMode: 'individual' });
    const consumer = await cs.createConsumer(queue, { prefetch: 100 });
    const bodies = new Set<string>();
    let duplicates = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${bodies.size} of ${sent}`)), 60_000);
      consumer.on('message', (m) => {
        const body = m.body.toString();
        if (bodies.has(body)) duplicates++;
        bodies.add(body);
        m.ack().catch(() => {});
        if (bodies.size === sent) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await consumerConn.close();
    expect({ received: bodies.size, lost: sent - bodies.size, duplicates }).toEqual({
      received: sent,
      lost: 0,
      duplicates: 0,
    });

    // The other node waits as slave, without a Postgres of its own.
    await other.waitForRole('slave', 30_000);
    await a.stop();
    await b.stop();
    expect(alive(second)).toBe(false);
  });

  it('refuses a node whose lock directory is not the one the store belongs to (exit 1, naming both)', async () => {
    expect(existsSync(path.join(storeDir, 'keel-store.json'))).toBe(true);
    const otherLock = path.join(dir, 'another-lock');
    mkdirSync(otherLock, { mode: 0o755 });
    const c = await sharedNode('c', otherLock);
    const exit = await c.exited;
    expect(exit.code).toBe(1);
    const text = JSON.stringify(c.logs);
    expect(text).toContain(`belongs to lock directory ${lockDir}`);
    expect(text).toContain(otherLock);
    expect(postmasterPid() === null || !alive(postmasterPid() as number)).toBe(true);
  });
});
