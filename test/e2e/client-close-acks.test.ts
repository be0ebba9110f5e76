/**
 * @keel/client's close() on a real broker process over real Postgres: what an auto-ack consumer
 * processed stays consumed. close() set the connection to 'closing' before it flushed the batched
 * acknowledgements, and a closing link refused them, so the broker redelivered messages the
 * application had already handled to the next consumer (45 of 90 in one run); messages that
 * arrived during close() were handed to the listener too, and their acks came after CLOSE.
 * Counted: sent, consumed by the first connection, by the second, lost, duplicated.
 */
import { type Connection, connect as connectClient } from '@keel/client';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { FAST_NODE_ENV, startNode } from './helpers/cluster';

jest.setTimeout(120_000);

const db = useTestDatabase();
let node: BrokerProcess;
const open: Connection[] = [];

beforeAll(async () => {
  node = await startNode({ db: db.url, cluster: 'closeacks', name: 'closeacks-n1', env: FAST_NODE_ENV });
  await node.waitForRole('master', 30_000);
});

afterAll(async () => {
  for (const c of open.splice(0)) await c.close().catch(() => {});
  await stopAll();
});

async function connect(): Promise<Connection> {
  const c = await connectClient(`tcp://127.0.0.1:${node.port}`);
  open.push(c);
  return c;
}

async function queueDepth(name: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${node.adminPort}/api/queues/${encodeURIComponent(name)}`);
  return ((await res.json()) as { depth: number }).depth;
}

async function preload(queue: string, count: number): Promise<void> {
  const c = await connect();
  const producer = (await c.createSession()).createProducer(`queue://${queue}`, { persistent: true });
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++)
    sends.push(producer.send(Buffer.from(`m${i}`), { properties: { i, bucket: i % 10 } }));
  await Promise.all(sends);
  await c.close();
}

/** An auto-ack consumer that closes its connection as soon as `stopAfter` messages were handled. */
async function consumeThenClose(queue: string, stopAfter: number, selector?: string): Promise<Set<number>> {
  const c = await connect();
  const session = await c.createSession({ ackMode: 'auto' });
  const seen = new Set<number>();
  let enough!: () => void;
  const reached = new Promise<void>((resolve) => {
    enough = resolve;
  });
  const consumer = await session.createConsumer(`queue://${queue}`, {
    prefetch: 100,
    ...(selector ? { selector } : {}),
  });
  consumer.onMessage((m) => {
    seen.add(Number(m.properties.i));
    if (seen.size === stopAfter) enough();
  });
  await reached;
  await c.close();
  return seen;
}

async function drain(queue: string, expected: number): Promise<number[]> {
  const c = await connect();
  const session = await c.createSession({ ackMode: 'auto' });
  const got: number[] = [];
  let all!: () => void;
  const done = new Promise<void>((resolve) => {
    all = resolve;
  });
  const consumer = await session.createConsumer(`queue://${queue}`, { prefetch: 100 });
  consumer.onMessage((m) => {
    got.push(Number(m.properties.i));
    if (got.length === expected) all();
  });
  await done;
  // Anything more (a redelivered duplicate) would come now.
  await new Promise((r) => setTimeout(r, 500));
  await c.close();
  return got;
}

describe('@keel/client close() keeps what an auto-ack consumer handled consumed', () => {
  it('a plain consumer: closed right after 150 of 600, the next consumer gets exactly the rest', async () => {
    const queue = 'closeacks.plain';
    const sent = 600;
    await preload(queue, sent);
    const first = await consumeThenClose(queue, 150);
    const left = sent - first.size;
    const second = await drain(queue, left);
    const again = second.filter((i) => first.has(i));
    const union = new Set([...first, ...second]);
    // sent 600 = consumed by the first + by the second; nothing lost, nothing twice.
    expect({
      first: first.size,
      second: second.length,
      duplicated: again.length,
      lost: sent - union.size,
    }).toEqual({ first: first.size, second: left, duplicated: 0, lost: 0 });
    expect(await queueDepth(queue)).toBe(0);
  });

  it('a selector consumer (every 10th message): closed after its 60, the others get the rest', async () => {
    const queue = 'closeacks.selector';
    const sent = 600;
    await preload(queue, sent);
    const first = await consumeThenClose(queue, 60, 'bucket = 0');
    expect([...first].every((i) => i % 10 === 0)).toBe(true);
    const second = await drain(queue, sent - first.size);
    const again = second.filter((i) => first.has(i));
    expect({ duplicated: again.length, lost: sent - new Set([...first, ...second]).size }).toEqual({
      duplicated: 0,
      lost: 0,
    });
    expect(await queueDepth(queue)).toBe(0);
  });
});
