/**
 * Why the master lock lives in its own database (DESIGN.md, "The lock lives in its own small
 * database"): a transaction that stays open holds back VACUUM in ITS database. With the master
 * serving (row locker, lock in `<db>_lock`), the rows of consumed messages are removable and VACUUM
 * removes them; with a lock transaction held open in the message database itself, the same traffic
 * leaves every consumed message behind as a dead row until that transaction ends.
 */
import { connect } from '@keel/client';
import { stopAll, useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { queueDepth, sql, startNode } from './helpers/cluster';
import { Ledger } from './helpers/ledger';
import { runProducer, startConsumer } from './helpers/traffic';

jest.setTimeout(90_000);

const db = useTestDatabase();
const CLUSTER = 'vac';
const QUEUE = 'vac.work';
const MESSAGES = 5_000;

afterAll(async () => {
  await stopAll();
});

interface DeadRows {
  /** pgstattuple's dead_tuple_count when the extension is available, else n_dead_tup. */
  dead: number;
  nDeadTup: number;
  source: 'pgstattuple' | 'pg_stat_user_tables';
}

async function vacuumAndCountDead(url: string): Promise<DeadRows> {
  const c = new Client({ connectionString: url, application_name: 'keel-e2e-vacuum' });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query('VACUUM keel_messages');
    // VACUUM reports its result to the cumulative statistics itself; a fresh snapshot reads it.
    await c.query('SELECT pg_stat_clear_snapshot()');
    const stat = await c.query<{ n: string }>(
      "SELECT n_dead_tup::text AS n FROM pg_stat_user_tables WHERE relname = 'keel_messages'",
    );
    const nDeadTup = Number(stat.rows[0]?.n ?? 0);
    let hasPgstattuple = false;
    try {
      await c.query('CREATE EXTENSION IF NOT EXISTS pgstattuple');
      hasPgstattuple = true;
    } catch {
      // contrib not installed: n_dead_tup it is
    }
    if (!hasPgstattuple) return { dead: nDeadTup, nDeadTup, source: 'pg_stat_user_tables' };
    const t = await c.query<{ n: string }>(
      "SELECT dead_tuple_count::text AS n FROM pgstattuple('keel_messages')",
    );
    return { dead: Number(t.rows[0]?.n ?? 0), nDeadTup, source: 'pgstattuple' };
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * VACUUM and count, again within a deadline while dead rows remain: other test files share this
 * server and may briefly hold a snapshot of their own. A lock transaction held open in this
 * database (run 2) holds them back for as long as it lives, which no retry gets past.
 */
async function vacuumUntilClean(url: string): Promise<DeadRows> {
  const deadline = Date.now() + 20_000;
  let rows = await vacuumAndCountDead(url);
  while (rows.dead > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    rows = await vacuumAndCountDead(url);
  }
  return rows;
}

/** Produces MESSAGES persistent messages, then consumes them all, and waits until the queue is empty. */
async function produceAndConsume(port: number, tag: string): Promise<Ledger> {
  const ledger = new Ledger();
  const conn = await connect(`tcp://127.0.0.1:${port}`);
  conn.on('error', () => {});
  try {
    // Produce first, then consume: with concurrent store and dispatch a message consumed at once
    // is never written, and this test is about the dead rows stored-then-consumed messages leave.
    await runProducer({
      session: await conn.createSession(),
      destination: `queue://${QUEUE}`,
      name: tag,
      count: MESSAGES,
      ledger,
      window: 50,
      bodyBytes: 128,
      deadline: Date.now() + 30_000,
    });
    const consumer = await startConsumer(conn, `queue://${QUEUE}`, ledger, 500, tag);
    await ledger.waitFor(() => ledger.delivered.size >= MESSAGES, 30_000, `${tag}: every message`);
    const deadline = Date.now() + 15_000;
    while ((await queueDepth(db.url, CLUSTER, QUEUE)) > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await consumer.close();
  } finally {
    await conn.close();
  }
  expect(ledger.summary()).toMatchObject({ receipted: MESSAGES, lost: 0, duplicates: 0 });
  expect(await queueDepth(db.url, CLUSTER, QUEUE)).toBe(0);
  return ledger;
}

test('VACUUM removes consumed messages while the master holds its lock in <db>_lock, not while a lock transaction is open in the message database', async () => {
  const node = await startNode({ db: db.url, cluster: CLUSTER, name: 'vac-n1' });
  await node.waitForRole('master');
  // The master's lock session is in the lock database, idle in its open transaction.
  const lockSessions = await sql<{ datname: string; state: string }>(
    db.url,
    `SELECT datname, state FROM pg_stat_activity WHERE application_name LIKE 'keel-lock:${CLUSTER}:%'`,
  );
  expect(lockSessions.map((s) => s.datname)).toEqual([db.lockName]);

  // Run 1: the lock lives in <db>_lock.
  await produceAndConsume(node.port, 'run1');
  const run1 = await vacuumUntilClean(db.url);

  // Run 2: a lock transaction held open in the message database itself (ActiveMQ's layout).
  const holder = new Client({ connectionString: db.url, application_name: 'keel-e2e-lock-in-same-db' });
  holder.on('error', () => {});
  await holder.connect();
  let run2: DeadRows;
  let afterRelease: DeadRows;
  try {
    await holder.query('SET idle_in_transaction_session_timeout = 0');
    await holder.query("INSERT INTO activemq_lock (cluster) VALUES ('vac-same-db') ON CONFLICT DO NOTHING");
    await holder.query('BEGIN');
    await holder.query("SELECT cluster FROM activemq_lock WHERE cluster = 'vac-same-db' FOR UPDATE");
    const xid = await holder.query<{ xid: string | null }>('SELECT txid_current_if_assigned()::text AS xid');
    // A row lock needs a transaction id: that id is what holds the horizon back.
    expect(xid.rows[0]?.xid).not.toBeNull();
    await produceAndConsume(node.port, 'run2');
    run2 = await vacuumAndCountDead(db.url);
    await holder.query('COMMIT');
    // Once the lock transaction is gone, VACUUM removes them.
    afterRelease = await vacuumUntilClean(db.url);
  } finally {
    await holder.end().catch(() => {});
  }

  console.log(
    `[e2e vacuum] ${MESSAGES} messages produced+consumed per run; dead rows after VACUUM (${run1.source}): ` +
      `lock in ${db.lockName}: ${run1.dead} (n_dead_tup ${run1.nDeadTup}); lock transaction open in the message database: ` +
      `${run2.dead} (n_dead_tup ${run2.nDeadTup}); after that transaction ended: ${afterRelease.dead} (n_dead_tup ${afterRelease.nDeadTup})`,
  );
  expect(run1.dead).toBe(0);
  expect(run2.dead).toBeGreaterThanOrEqual(MESSAGES);
  expect(afterRelease.dead).toBe(0);
});
