/**
 * Queue browsing on a real broker process over real Postgres (issue #17.1): a STOMP SUBSCRIBE with
 * `browser:true` (stomp.py, test/python/stomp_browse.py) and @keel/client's session.browse() show
 * the queue and consume nothing; the memory window is 10 messages (KEEL_STORE_PAGE_SIZE), so the
 * larger backlogs are browsed partly from the store.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { type Connection, connect as connectClient } from '@keel/client';
import type { DeliveredMessage } from '@keel/protocol';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { FAST_NODE_ENV, startNode } from './helpers/cluster';

jest.setTimeout(120_000);

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(__dirname, '../python/stomp_browse.py');
const db = useTestDatabase();

interface BrowseResult {
  browsed: string[];
  end: Record<string, string | number> | null;
  browsed_redelivered: number;
  after_end: number;
  consumed: string[];
  consumed_redelivered: number;
  errors: string[];
}

function runPython(args: string[], timeoutMs: number): Promise<BrowseResult> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        done(JSON.parse(last) as BrowseResult);
      } catch {
        fail(new Error(`no JSON result from stomp_browse.py (exit ${code}): ${stdout}\n${stderr}`));
      }
    });
  });
}

/** The bodies in delivery order: priority 7 (every third) first, then 4, each in send order. */
function deliveryOrder(count: number): string[] {
  const high: string[] = [];
  const low: string[] = [];
  for (let i = 0; i < count; i++) (i % 3 === 0 ? high : low).push(`m${i}`);
  return [...high, ...low];
}

let node: BrokerProcess;

beforeAll(async () => {
  node = await startNode({
    db: db.url,
    cluster: 'browse',
    name: 'browse-n1',
    env: { ...FAST_NODE_ENV, KEEL_STORE_PAGE_SIZE: '10' },
  });
  await node.waitForRole('master', 30_000);
});

afterAll(async () => {
  await stopAll();
});

async function queueDepth(name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/api/queues/${encodeURIComponent(name)}`);
  return ((await res.json()) as { depth: number }).depth;
}

describe('STOMP browser:true with stomp.py', () => {
  it('browses 5 persistent messages without consuming them; a consumer then gets all 5', async () => {
    const r = await runPython(['127.0.0.1', String(node.stompPort), 'browse.five', '5'], 60_000);
    expect(r.errors).toEqual([]);
    expect(r.browsed).toEqual(deliveryOrder(5));
    expect(r.end).toMatchObject({
      subscription: 'browse',
      browser: 'end',
      destination: '/queue/browse.five',
    });
    expect(r.end!.body_length).toBe(0);
    expect(r.browsed_redelivered).toBe(0);
    expect(r.after_end).toBe(0);
    expect(r.consumed).toEqual([...deliveryOrder(5), 'after-end']);
    expect(r.consumed_redelivered).toBe(0);
    expect(await queueDepth('browse.five')).toBe(0);
  });

  it('browses 60 messages past a memory window of 10 in order, acking each (which consumes nothing)', async () => {
    const r = await runPython(
      ['127.0.0.1', String(node.stompPort), 'browse.big', '60', 'client-individual'],
      60_000,
    );
    expect(r.errors).toEqual([]);
    expect(r.browsed).toEqual(deliveryOrder(60));
    expect(r.end).toMatchObject({ browser: 'end' });
    expect(r.after_end).toBe(0);
    expect(r.consumed).toEqual([...deliveryOrder(60), 'after-end']);
    expect(r.consumed_redelivered).toBe(0);
  });
});

describe('@keel/client session.browse()', () => {
  let conn: Connection;
  afterEach(async () => {
    await conn?.close();
  });

  it('browses 60 stored messages with a prefetch of 7 (credit), then a consumer gets them first-time', async () => {
    conn = await connectClient(`tcp://127.0.0.1:${node.port}`);
    const session = await conn.createSession();
    const producer = session.createProducer('queue://browse.native');
    for (let i = 0; i < 60; i++) {
      await producer.send(Buffer.from(`m${i}`), { persistent: true, priority: i % 3 === 0 ? 7 : 4 });
    }
    const browsed: DeliveredMessage[] = [];
    for await (const m of await session.browse('queue://browse.native', { prefetch: 7 })) browsed.push(m);
    expect(browsed.map((m) => m.body.toString())).toEqual(deliveryOrder(60));
    expect(browsed.every((m) => m.deliveryCount === 0 && !m.redelivered)).toBe(true);
    expect(await queueDepth('browse.native')).toBe(60);

    // Topics and wildcards cannot be browsed.
    await expect(session.browse('topic://browse.t')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(session.browse('queue://browse.>')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

    const consumer = await session.createConsumer('queue://browse.native', { prefetch: 20 });
    const consumed: string[] = [];
    for await (const m of consumer) {
      expect(m.redelivered).toBe(false);
      consumed.push(m.text());
      if (consumed.length === 60) break;
    }
    await consumer.close();
    expect(consumed).toEqual(deliveryOrder(60));
  });
});
