/**
 * ActiveMQ message groups, exclusive consumers and consumer priority (issue #21 points 2 and 3)
 * through stomp.py (test/python/stomp_dispatch_policies.py), a client no one here wrote, on a real
 * broker process over real Postgres.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { type Connection, connect, type ReceivedMessage } from '@keel/client';
import { type BrokerProcess, stopAll, useTestDatabase } from '@keel/testkit';
import { startNode } from './helpers/cluster';

jest.setTimeout(120_000);

const PYTHON = '/usr/bin/python3';
const SCRIPT = resolve(__dirname, '../python/stomp_dispatch_policies.py');
const db = useTestDatabase();

type Got = [consumer: string, body: string, headers: Record<string, string>];

function runScenario(scenario: string, queue: string): Promise<{ got: Got[]; errors: string[] }> {
  return new Promise((done, fail) => {
    const child = spawn(PYTHON, [SCRIPT, '127.0.0.1', String(node.stompPort), scenario, queue], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        done(JSON.parse(last));
      } catch {
        fail(new Error(`no JSON result from ${scenario} (exit ${code}): ${stdout}\n${stderr}`));
      }
    });
  });
}

const first = (g: Got) => g[2].JMSXGroupFirstForConsumer === 'true';
const by = (got: Got[], consumer: string) => got.filter((g) => g[0] === consumer).map((g) => g[1]);

let node: BrokerProcess;

beforeAll(async () => {
  node = await startNode({ db: db.url, cluster: 'policies', name: 'policies-n1' });
  await node.waitForRole('master', 30_000);
});

afterAll(async () => {
  await stopAll();
});

describe('message groups (JMSXGroupID) with stomp.py', () => {
  it('3 groups x 50 across 2 consumers: each group on one consumer, in JMSXGroupSeq order', async () => {
    const { got, errors } = await runScenario('groups', 'grp.spread');
    expect(errors).toEqual([]);
    expect(got).toHaveLength(150);
    const owners = new Set<string>();
    for (const g of ['g1', 'g2', 'g3']) {
      const mine = got.filter((x) => x[2].JMSXGroupID === g);
      expect(new Set(mine.map((x) => x[0])).size).toBe(1);
      owners.add(mine[0]![0]);
      expect(mine.map((x) => Number(x[2].JMSXGroupSeq))).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(mine.map(first)).toEqual([true, ...Array(49).fill(false)]);
    }
    expect(owners).toEqual(new Set(['a', 'b']));
  });

  it('a consumer leaving hands its group over: unacknowledged messages first, in order', async () => {
    const { got, errors } = await runScenario('handover', 'grp.handover');
    expect(errors).toEqual([]);
    expect(by(got, 'a')).toEqual(['g1:1', 'g1:2', 'g1:3', 'g1:4', 'g1:5']);
    const toB = got.filter((g) => g[0] === 'b');
    expect(toB.map((g) => g[1])).toEqual(['g1:3', 'g1:4', 'g1:5', 'g1:6', 'g1:7', 'g1:8', 'g1:9', 'g1:10']);
    expect(toB.map(first)).toEqual([true, false, false, false, false, false, false, false]);
    expect(toB.slice(0, 3).map((g) => g[2].redelivered)).toEqual(['true', 'true', 'true']);
  });

  it('JMSXGroupSeq -1 closes the group: its next message starts a new assignment', async () => {
    const { got, errors } = await runScenario('close', 'grp.close');
    expect(errors).toEqual([]);
    expect(got.map((g) => [g[0], g[1], first(g)])).toEqual([
      ['a', 'g1:1', true],
      ['a', 'g1:end', false],
      ['a', 'g2:1', true],
      // a still owns g2, b owns nothing: the reopened g1 goes to b.
      ['b', 'g1:again', true],
    ]);
  });
});

describe('exclusive consumers (activemq.exclusive) with stomp.py', () => {
  it('one consumer gets everything; when it leaves the other gets the rest, none lost or doubled', async () => {
    const { got, errors } = await runScenario('exclusive', 'excl.work');
    expect(errors).toEqual([]);
    const all = Array.from({ length: 30 }, (_, i) => `m${i + 1}`);
    expect(by(got, 'a')).toEqual(all.slice(0, 20));
    // b: a's 12 unacknowledged messages (redelivered), then the 10 sent after, in order.
    expect(by(got, 'b')).toEqual(all.slice(8));
    const acked = new Set(all.slice(0, 8));
    const received = [...acked, ...by(got, 'b')];
    expect(received.length).toBe(30);
    expect(new Set(received).size).toBe(30);
  });
});

describe('ActiveMQ destination option consumer.exclusive with stomp.py', () => {
  it('/queue/x?consumer.exclusive=true makes an exclusive consumer of /queue/x', async () => {
    const { got, errors } = await runScenario('option', 'excl.option');
    expect(errors).toEqual([]);
    expect(by(got, 'a')).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(by(got, 'b')).toEqual([]);
  });
});

describe('consumer priority (activemq.priority) with stomp.py', () => {
  it('the priority 127 consumer gets everything while it has credit; priority 0 the overflow', async () => {
    const { got, errors } = await runScenario('priority', 'prio.work');
    expect(errors).toEqual([]);
    expect(by(got, 'high')).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(by(got, 'low')).toEqual(['m6', 'm7', 'm8']);
  });
});

describe('exclusive consumers and consumer priority with @keel/client (native)', () => {
  const conns: Connection[] = [];
  afterEach(async () => {
    for (const c of conns.splice(0)) await c.close().catch(() => {});
  });

  async function consumerOn(
    queue: string,
    tag: string,
    got: [string, ReceivedMessage][],
    options: { exclusive?: boolean; priority?: number; prefetch?: number },
    onMessage: () => void,
  ): Promise<Connection> {
    const conn = await connect(`tcp://127.0.0.1:${node.port}`);
    conns.push(conn);
    const session = await conn.createSession({ ackMode: 'individual' });
    const consumer = await session.createConsumer(`queue://${queue}`, options);
    consumer.onMessage((m) => {
      got.push([tag, m]);
      onMessage();
    });
    return conn;
  }

  function until(check: () => boolean, what: string): { poke: () => void; done: Promise<void> } {
    let poke = (): void => {};
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 20_000);
      poke = () => {
        if (!check()) return;
        clearTimeout(timer);
        resolve();
      };
    });
    return { poke: () => poke(), done };
  }

  async function send(queue: string, bodies: string[]): Promise<void> {
    const conn = await connect(`tcp://127.0.0.1:${node.port}`);
    conns.push(conn);
    const producer = (await conn.createSession()).createProducer(`queue://${queue}`, { persistent: true });
    for (const b of bodies) await producer.send(b);
  }

  const names = (got: [string, ReceivedMessage][], tag: string) =>
    got.filter((g) => g[0] === tag).map((g) => g[1].body.toString());

  it('exclusive: one consumer gets all; when it goes the other gets its unacknowledged ones and the rest', async () => {
    const got: [string, ReceivedMessage][] = [];
    let wait = until(() => got.length >= 10, '10 messages');
    const a = await consumerOn('native.excl', 'a', got, { exclusive: true }, () => wait.poke());
    await consumerOn('native.excl', 'b', got, { exclusive: true }, () => wait.poke());
    const all = Array.from({ length: 15 }, (_, i) => `m${i + 1}`);
    await send('native.excl', all.slice(0, 10));
    await wait.done;
    expect(names(got, 'a')).toEqual(all.slice(0, 10));
    for (const [, m] of got.slice(0, 4)) await m.ack();
    wait = until(() => names(got, 'b').length >= 11, "b's 11 messages");
    await a.close();
    await send('native.excl', all.slice(10));
    await wait.done;
    expect(names(got, 'b')).toEqual(all.slice(4));
  });

  it('priority: the priority 127 consumer gets everything while it has credit', async () => {
    const got: [string, ReceivedMessage][] = [];
    const wait = until(() => got.length >= 8, '8 messages');
    await consumerOn('native.prio', 'low', got, { priority: 0, prefetch: 100 }, () => wait.poke());
    await consumerOn('native.prio', 'high', got, { priority: 127, prefetch: 5 }, () => wait.poke());
    await send('native.prio', ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']);
    await wait.done;
    expect(names(got, 'high')).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(names(got, 'low')).toEqual(['m6', 'm7', 'm8']);
  });
});
