import { type BrokerProcess, startBroker, useTestDatabase } from '@keel/testkit';
import type { RssSample } from '../rss-sampler';
import { runBench } from '../run-bench';
import { subscriptionPlan } from './flow';
import { queueName, summarizeManyQueuesRss } from './many-queues-scenario';

describe('subscriptionPlan', () => {
  it('puts each queue’s consumers on different connections, in equal shares', () => {
    expect(subscriptionPlan(3, 4, 4)).toEqual([
      [0, 1, 2],
      [0, 1, 2],
      [0, 1, 2],
      [0, 1, 2],
    ]);
    const plan = subscriptionPlan(5, 2, 3);
    expect(plan.map((p) => p.length)).toEqual([4, 3, 3]);
    expect(plan.flat().sort()).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    for (const conn of plan) expect(new Set(conn).size).toBe(conn.length);
  });

  it('is one subscription per connection for one destination (throughput, connections)', () => {
    expect(subscriptionPlan(1, 4, 4)).toEqual([[0], [0], [0], [0]]);
  });
});

describe('summarizeManyQueuesRss', () => {
  const s = (tMs: number, phase: string, rssKiB: number): RssSample => ({ tMs, phase, rssKiB });
  const samples = [
    s(0, 'subscribe', 50_000),
    s(1000, 'idle', 60_000),
    s(2000, 'load', 70_000),
    s(3000, 'load', 90_000),
    s(4000, 'load', 80_000),
    s(5000, 'load', 84_000),
    s(6000, 'drain', 95_000),
  ];

  it('peak over load and drain, steady = median of the second half of the load, per queue from idle', () => {
    expect(summarizeManyQueuesRss(samples, 40_000, 60_000, 100, 3500)).toEqual({
      baselineKiB: 40_000,
      idleKiB: 60_000,
      peakKiB: 95_000,
      steadyKiB: 82_000,
      idlePerQueueKiB: 200,
    });
  });

  it('is null where nothing was read', () => {
    expect(summarizeManyQueuesRss([], null, 60_000, 100, 0)).toEqual({
      baselineKiB: null,
      idleKiB: 60_000,
      peakKiB: null,
      steadyKiB: null,
      idlePerQueueKiB: null,
    });
  });

  it('names the queues after the run', () => {
    expect(queueName('bench-many-queues-x-1', 7)).toBe('bench-many-queues-x-1.q-7');
  });
});

/** Needs the built CLI (`npx turbo run build --filter=@keel/server...`): a real Keel node. */
describe('many-queues against a Keel node (native)', () => {
  jest.setTimeout(120_000);
  const db = useTestDatabase();
  let broker: BrokerProcess;

  beforeAll(async () => {
    broker = await startBroker({ db: db.url, name: 'mq-1', cluster: `mq-${process.pid}` });
    await broker.waitForRole('master', 30_000);
  });

  afterAll(async () => {
    await broker?.stop();
  });

  it('spreads the messages over every queue, each received once, with RSS and CPU per message', async () => {
    const out: string[] = [];
    const sink = { write: (t: string) => out.push(t) !== 0 } as unknown as NodeJS.WritableStream;
    const report = await runBench(
      [
        'many-queues',
        '--protocol',
        'native',
        '--url',
        `tcp://127.0.0.1:${broker.port}`,
        '--queues',
        '25',
        '--consumers',
        '3',
        '--count',
        '500',
        '--in-flight',
        '8',
        '--producers',
        '2',
        '--idle-settle-ms',
        '1500',
        '--broker-pid',
        String(broker.pid),
        '--quiet',
      ],
      { stdout: sink, stderr: sink },
    );
    const run = report!.runs[0]!;
    expect(run.kind).toBe('many-queues');
    if (run.kind !== 'many-queues') return;
    expect(run.errors).toEqual([]);
    expect([run.sent, run.received, run.missing, run.duplicates]).toEqual([500, 500, 0, 0]);
    expect(run.subscriptions).toBe(100);
    expect(run.rss?.baselineKiB).toBeGreaterThan(0);
    expect(run.rss?.idleKiB).toBeGreaterThan(0);
    expect(run.rss?.peakKiB).toBeGreaterThan(0);
    expect(run.cost?.brokerCpuUsPerMsg).toBeGreaterThan(0);
    expect(out.join('')).toContain('KiB/queue');
  });
});
