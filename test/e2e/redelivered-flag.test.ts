/**
 * The STOMP `redelivered` header (JMSRedelivered) after a handover, a master's SIGKILL and a Postgres
 * restart, seen by stomp.py (issue #17.5): true for exactly the messages a consumer had received
 * and not acknowledged, false for every message no consumer had received — not for everything
 * stored under an earlier epoch. Real broker processes on real Postgres; every scenario counts sent,
 * received, lost and duplicated.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import {
  type BrokerProcess,
  startPostgresServer,
  stopAll,
  useTestDatabase,
  withDatabase,
} from '@keel/testkit';
import {
  crashedNodes,
  poll,
  queueDepth,
  restartPostgres,
  sql,
  startCluster,
  waitForNewMaster,
} from './helpers/cluster';

jest.setTimeout(180_000);

const PYTHON = '/usr/bin/python3';
const SCRIPT = path.resolve(__dirname, '../python/redelivered_flag.py');
const ADMIN = ['--admin-user', 'admin', '--admin-password', 's3cret'];
const AUTH = `Basic ${Buffer.from('admin:s3cret').toString('base64')}`;
const PREFETCH = 100;
const ACKS = 20;

const db = useTestDatabase();

afterAll(async () => {
  await stopAll();
});

/**
 * A database of its own per scenario: message ids are unique across the table, not per cluster, so
 * two clusters at the same epoch must not share one (a failed scenario would leave rows behind).
 */
async function ownDatabase(name: string): Promise<{ url: string; drop: () => Promise<void> }> {
  await sql(db.adminUrl, `CREATE DATABASE ${name}`);
  return {
    url: withDatabase(db.adminUrl, name),
    drop: async () => {
      for (const d of [name, `${name}_lock`])
        await sql(db.adminUrl, `DROP DATABASE IF EXISTS ${d} WITH (FORCE)`);
    },
  };
}

/** Runs the python script to its end and returns its JSON line. */
function python<T>(args: string[], timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`redelivered_flag.py ${args[0]} exited ${code}: ${out}\n${err}`));
      }
    });
  });
}

interface Held {
  received: string[];
  acked: string[];
  redelivered: string[];
}

/** A consumer that received PREFETCH + ACKS messages, acknowledged ACKS and holds the rest. */
function holdConsumer(port: number, queue: string): Promise<{ held: Held; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const args = [SCRIPT, 'hold', '127.0.0.1', String(port), queue, String(PREFETCH), String(ACKS)];
    const child = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (!out.includes('\n')) return;
      try {
        resolve({ held: JSON.parse(out.split('\n')[0]!) as Held, child });
      } catch (e) {
        reject(e);
      }
    });
    child.on('close', (code) => reject(new Error(`hold consumer exited ${code}: ${out}\n${err}`)));
  });
}

/** Stored messages of the queue the store counts as delivered (delivery_count > 0). */
async function markedDelivered(url: string, cluster: string, queue: string): Promise<number> {
  const rows = await sql<{ n: number }>(
    url,
    `SELECT count(*)::int AS n FROM keel_messages m JOIN keel_destinations d ON d.id = m.dest_id
      WHERE d.cluster = $1 AND d.name = $2 AND m.delivery_count > 0`,
    [cluster, queue],
  );
  return rows[0]?.n ?? 0;
}

interface Outcome {
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  /** Never received by a consumer before, and flagged redelivered. */
  falselyFlagged: number;
  /** Received (not acknowledged) before, and not flagged. */
  unflagged: number;
}

/**
 * Sends N, lets a consumer take PREFETCH + ACKS and acknowledge ACKS, runs `fault` (which returns
 * the node serving afterwards), then drains the queue with a second consumer and compares its
 * `redelivered` flags with what the first one had received.
 */
async function scenario(
  name: string,
  url: string,
  nodes: BrokerProcess[],
  queue: string,
  n: number,
  fault: (master: BrokerProcess, cluster: string) => Promise<BrokerProcess>,
): Promise<Outcome> {
  const master = nodes[0]!;
  const cluster = name;
  await python(['send', '127.0.0.1', String(master.stompPort), queue, String(n)]);
  const { held, child } = await holdConsumer(master.stompPort, queue);
  expect(held.received).toHaveLength(PREFETCH + ACKS);
  expect(held.redelivered).toEqual([]); // first deliveries
  let serving: BrokerProcess;
  try {
    serving = await fault(master, cluster);
  } finally {
    child.kill('SIGKILL'); // the held messages go back unacknowledged
  }
  const acked = new Set(held.acked);
  const delivered = new Set(held.received.filter((b) => !acked.has(b)));
  const expected = n - acked.size;
  const drained = await python<{ messages: [string, boolean][] }>([
    'drain',
    '127.0.0.1',
    String(serving.stompPort),
    queue,
    String(expected),
  ]);
  const bodies = drained.messages.map(([b]) => b);
  const seen = new Set(bodies);
  const outcome: Outcome = {
    sent: n,
    received: bodies.length,
    lost: [...Array(n).keys()].filter((i) => !acked.has(`m${i}`) && !seen.has(`m${i}`)).length,
    duplicated: bodies.length - seen.size + bodies.filter((b) => acked.has(b)).length,
    falselyFlagged: drained.messages.filter(([b, r]) => r && !delivered.has(b)).length,
    unflagged: drained.messages.filter(([b, r]) => !r && delivered.has(b)).length,
  };
  console.log(`[e2e redelivered ${name}] ${JSON.stringify(outcome)} held=${delivered.size}`);
  await poll(async () => (await queueDepth(url, cluster, queue)) === 0, 20_000, 'the queue to be empty');
  return outcome;
}

const clean = { lost: 0, duplicated: 0, falselyFlagged: 0, unflagged: 0 };

test('after a planned handover only the delivered-unacknowledged messages are redelivered', async () => {
  const own = await ownDatabase(`keel_redeliv_h_${process.pid}`);
  const nodes = await startCluster(own.url, 'redeliv-h', 2, { args: ADMIN });
  try {
    const outcome = await scenario('redeliv-h', own.url, nodes, 'flag.h', 600, async (master) => {
      const taker = waitForNewMaster(nodes, master, 30_000);
      const res = await fetch(`http://127.0.0.1:${master.adminPort}/api/broker/handover`, {
        method: 'POST',
        headers: { authorization: AUTH },
      });
      expect(res.status).toBe(200);
      return (await taker).node;
    });
    expect(outcome).toMatchObject({ ...clean, received: 600 - ACKS });
    expect(crashedNodes(nodes)).toEqual([]);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await own.drop();
  }
});

test('after the master is killed (marks committed) only the delivered-unacknowledged ones are redelivered', async () => {
  const own = await ownDatabase(`keel_redeliv_k_${process.pid}`);
  const nodes = await startCluster(own.url, 'redeliv-k', 2);
  try {
    const outcome = await scenario('redeliv-k', own.url, nodes, 'flag.k', 600, async (master, cluster) => {
      // The one window left is a crash before a delivery's mark commits: wait until they did.
      await poll(
        async () => (await markedDelivered(own.url, cluster, 'flag.k')) === PREFETCH,
        20_000,
        'the delivery marks to commit',
      );
      const taker = waitForNewMaster(nodes, master, 30_000);
      master.kill('SIGKILL');
      return (await taker).node;
    });
    expect(outcome).toMatchObject({ ...clean, received: 600 - ACKS });
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await own.drop();
  }
});

test('after a Postgres restart only the delivered-unacknowledged ones are redelivered', async () => {
  // A private server: the shared one serves other test files and must never restart.
  const server = await startPostgresServer({ externalUrl: null, skip: ['testcontainers', 'embedded'] });
  await sql(server.adminUrl, 'CREATE DATABASE keel_redeliv_p');
  const url = withDatabase(server.adminUrl, 'keel_redeliv_p');
  const nodes = await startCluster(url, 'redeliv-p', 2);
  try {
    // More than a memory window (2,000): part of the backlog is paged in after the restart.
    const outcome = await scenario('redeliv-p', url, nodes, 'flag.p', 2500, async () => {
      const marks = nodes.map((n) => n.mark());
      await restartPostgres(server);
      return Promise.any(
        nodes.map((n, i) =>
          n
            .waitForLog((e) => e.msg === 'role changed' && e.role === 'master', 60_000, marks[i])
            .then(() => n),
        ),
      );
    });
    expect(outcome).toMatchObject({ ...clean, received: 2500 - ACKS });
    expect(crashedNodes(nodes)).toEqual([]);
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await server.stop();
  }
});
