/**
 * JMS message selectors on a real broker process over real Postgres (issue #21.1), through stomp.py
 * (test/python/stomp_selectors.py): complementary selectors split a queue exactly and in order; an
 * invalid selector gets an ERROR naming the offset; a durable topic subscriber with a selector
 * stores and gets only what matches; 5 matching messages behind 100,000 that do not arrive without
 * the broker loading the backlog (the selector runs in the store's page query); and the drain rate
 * of a consumer matching 10 % of 100,000 stored messages is printed.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { Client } from 'pg';
import { FAST_NODE_ENV, startNode } from './helpers/cluster';

jest.setTimeout(180_000);

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(__dirname, '../python/stomp_selectors.py');
const db = useTestDatabase();
const CLUSTER = 'selectors';
const PAGE_SIZE = 1000;

type Result = Record<string, unknown> & { errors: string[] };

function runPython(args: string[], timeoutMs = 90_000): Promise<Result> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [SCRIPT, '127.0.0.1', String(node.stompPort), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        done(JSON.parse(stdout.trim().split('\n').pop() ?? '') as Result);
      } catch {
        fail(new Error(`no JSON result from stomp_selectors.py (exit ${code}): ${stdout}\n${stderr}`));
      }
    });
  });
}

let node: BrokerProcess;

async function start(): Promise<void> {
  node = await startNode({
    db: db.url,
    cluster: CLUSTER,
    name: 'sel-n1',
    env: { ...FAST_NODE_ENV, KEEL_STORE_PAGE_SIZE: String(PAGE_SIZE) },
  });
  await node.waitForRole('master', 30_000);
}

async function queueInfo(name: string): Promise<{ depth: number; inMemory: number }> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/api/queues/${encodeURIComponent(name)}`);
  return (await res.json()) as { depth: number; inMemory: number };
}

/**
 * The queue once its depth is `depth`, or as it is after 15 s. Acks (auto or stomp.py's, sent
 * without a receipt) are committed in the store after the client has the message, so the depth
 * reaches its final value a little after the last delivery.
 */
async function settledQueueInfo(name: string, depth: number): Promise<{ depth: number; inMemory: number }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const info = await queueInfo(name);
    if (info.depth === depth || Date.now() > deadline) return info;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Rows `m1`…`m<count>` written straight into keel_messages (no broker runs); `redSql` picks the red ones. */
async function bulkInsert(queue: string, count: number, redSql: string, firstId: number): Promise<void> {
  const c = new Client({ connectionString: db.url });
  await c.connect();
  try {
    const dest = await c.query(
      `INSERT INTO keel_destinations (cluster, type, name) VALUES ($1, 'queue', $2)
       ON CONFLICT (cluster, type, name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
      [CLUSTER, queue],
    );
    await c.query(
      `INSERT INTO keel_messages (id, dest_id, priority, expiration, delivery_count, headers, body)
       SELECT $4::bigint + i, $1, 4, 0, 0, jsonb_build_object('destination', 'queue://' || $2::text, 'persistent', true,
         'priority', 4, 'timestamp', 1, 'expiration', 0,
         'properties', jsonb_build_object('n', i, 'colour', CASE WHEN ${redSql} THEN 'red' ELSE 'blue' END)),
         convert_to('m' || i, 'UTF8')
       FROM generate_series(1, $3::int) AS i`,
      [dest.rows[0].id, queue, count, firstId],
    );
    await c.query('ANALYZE keel_messages');
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  // The backlogs go in before the broker starts (it recovers them); it creates the schema first.
  await start();
  await node.stop();
  await bulkInsert('sel.backlog', 100_005, 'i > 100000', 0);
  await bulkInsert('sel.tenth', 100_000, 'i % 10 = 0', 1_000_000);
  await start();
});

afterAll(async () => {
  await stopAll();
});

test('two consumers with complementary selectors split a queue exactly, each in order', async () => {
  const r = await runPython(['split', 'sel.split', '200']);
  expect(r.errors).toEqual([]);
  const all = Array.from({ length: 200 }, (_, i) => `m${i}`);
  expect(r.red).toEqual(all.filter((_, i) => i % 2 === 0));
  expect(r.blue).toEqual(all.filter((_, i) => i % 2 === 1));
  expect(r.extra).toBe(0);
  expect((await settledQueueInfo('sel.split', 0)).depth).toBe(0);
});

test.each(['client-individual', 'client'])(
  'stomp.py with a selector, prefetch 5 and ack:%s acking as it goes gets every match, in order',
  async (ackMode) => {
    // More than the window (PAGE_SIZE) of messages the selector skips pile up while the producer
    // sends: sends that wait for their commit must not be overtaken by later ones.
    const count = 3 * PAGE_SIZE;
    const r = await runPython(['acked', `sel.acked.${ackMode}`, String(count), ackMode]);
    expect(r.errors).toEqual([]);
    expect(r.red).toEqual(Array.from({ length: count / 2 }, (_, i) => `m${i * 2}`));
    expect((await settledQueueInfo(`sel.acked.${ackMode}`, count / 2)).depth).toBe(count / 2);
  },
);

test('an invalid selector gets an ERROR that says where and why', async () => {
  const r = await runPython(['invalid', 'sel.invalid']);
  const error = r.error as Record<string, string>;
  expect(error.code).toBe('INVALID_SELECTOR');
  expect(error.message).toContain('invalid selector at offset 18');
  expect(error.message).toContain('found the end of the selector');
});

test('a durable topic subscriber with a selector keeps and gets only the matching messages', async () => {
  const r = await runPython(['durable', 'sel-durable', '20']);
  expect(r.errors).toEqual([]);
  expect(r.red).toEqual(Array.from({ length: 10 }, (_, i) => `m${i * 2}`));
  expect(r.extra).toBe(0);
});

test('5 matching messages behind 100,000 that do not arrive, with the backlog left in the store', async () => {
  const before = await queueInfo('sel.backlog');
  expect(before.depth).toBe(100_005);
  const r = await runPython(['drain', 'sel.backlog', '5']);
  expect(r.errors).toEqual([]);
  expect(r.red).toEqual(['m100001', 'm100002', 'm100003', 'm100004', 'm100005']);
  const after = await settledQueueInfo('sel.backlog', 100_000);
  expect(after.depth).toBe(100_000);
  // Memory holds the window (and a selector page), never the backlog.
  expect(after.inMemory).toBeLessThanOrEqual(PAGE_SIZE + PAGE_SIZE / 2);
  console.log(`selector behind 100,000: 5 matching received in ${(r.seconds as number).toFixed(2)} s`);
});

test('a selector consumer matching 10 % of 100,000 stored messages drains its share (rate printed)', async () => {
  const r = await runPython(['drain', 'sel.tenth', '10000']);
  expect(r.errors).toEqual([]);
  const red = r.red as string[];
  expect(red).toHaveLength(10_000);
  expect(red[0]).toBe('m10');
  expect(red[9999]).toBe('m100000');
  const after = await settledQueueInfo('sel.tenth', 90_000);
  expect(after.depth).toBe(90_000);
  expect(after.inMemory).toBeLessThanOrEqual(PAGE_SIZE + PAGE_SIZE / 2);
  const rate = Math.round(10_000 / (r.seconds as number));
  console.log(
    `selector matching 10 % of 100,000 stored: 10,000 drained in ${(r.seconds as number).toFixed(2)} s = ${rate} msg/s`,
  );
});
